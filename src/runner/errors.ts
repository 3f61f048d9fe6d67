/** Errors the runner's commands raise: a refused verdict, a command in the wrong state, a tenant it refuses. */
import { describeRejection } from '../core/admission.ts';
import { FerryError } from '../core/errors.ts';
import type { Verdict } from '../core/types.ts';
import type { MigrationRecord } from '../store/records.ts';

/** Raised for a verdict that refuses: carries the reasons for the 422 body. */
export class RejectedError extends FerryError {
  readonly verdict: Verdict;
  readonly migrationId: string | null;
  constructor(verdict: Verdict, migrationId: string | null, message?: string) {
    super('FERRY_REJECTED', message ?? `rejected: ${describeRejection(verdict)}`, { reasons: verdict.reasons, verdict, migrationId });
    this.verdict = verdict;
    this.migrationId = migrationId;
  }
}

/** A command that does not apply to the state the migration is in. */
export function wrongState(m: MigrationRecord, what: string, needed: string): FerryError {
  return new FerryError('FERRY_WRONG_STATE', `migration ${m.id} is ${m.state}; ${what} applies only to a migration that is ${needed}`, {
    id: m.id,
    state: m.state,
  });
}

/** A tenant document that names a place or an identity the runner refuses. */
export function tenantError(path: string, message: string): FerryError {
  return new FerryError('FERRY_INVALID_REQUEST', `the tenant is not valid: ${path}: ${message}`, { problems: [{ path, message }] });
}
