/**
 * Path and query parameters, checked before anything is looked up. They are part of the URL, so a
 * bad one is a 400 (a bad document is a 422), except a migration id of the wrong shape: that names
 * no migration, so it is a 404 like an unknown one.
 */
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import { normaliseIssueRef, type IssueDefaults } from '../core/issue-ref.ts';
import { MIGRATION_ID_EXAMPLE, MIGRATION_ID_PATTERN } from '../core/migration-id.ts';
import { TENANT_ID, validate } from '../core/request-schema.ts';

/** Longest path parameter, as sent (URL-encoded): an issue ref of 300 characters, encoded, fits. */
export const MAX_PARAM_LENGTH = 1024;

/** A query string checked against `schema`; a bad one is a 400. */
/** The query of a route that takes none. */
export const NO_QUERY = z.strictObject({});

export function queryParams<T>(schema: z.ZodType<T>, query: unknown): T {
  try {
    return validate(schema, query ?? {}, 'query');
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError('FERRY_BAD_REQUEST', err.message, err.details);
    throw err;
  }
}

export function tenantParam(id: string): string {
  if (!TENANT_ID.test(id)) {
    throw new FerryError(
      'FERRY_BAD_REQUEST',
      `${JSON.stringify(id.slice(0, 80))} is not a tenant id: use lower-case letters, digits and dashes, starting with a letter or digit, at most 63 characters`,
    );
  }
  return id;
}

export function migrationParam(id: string): string {
  if (!MIGRATION_ID_PATTERN.test(id))
    throw new FerryError('FERRY_NOT_FOUND', `no migration ${JSON.stringify(id.slice(0, 80))}; ids look like ${MIGRATION_ID_EXAMPLE}`);
  return id;
}

/** An issue ref in its one written form (`github:acme/platform#742`); a bare `#742` needs defaultIssueRepo. */
export function issueParam(raw: string, defaults: IssueDefaults | undefined): string {
  try {
    return normaliseIssueRef(raw, defaults);
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError('FERRY_BAD_REQUEST', err.message);
    throw err;
  }
}
