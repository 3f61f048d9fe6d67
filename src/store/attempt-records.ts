/**
 * Attempts: one row per run of a migration, from the step it started at to how it ended. The row is
 * inserted and ended by the migration's transitions (start, and succeed/fail/cancel), in their
 * transaction; the rest is here. Reached through the Store.
 */
import type { Kysely, Selectable } from 'kysely';
import type { SqlDialect } from './dialect.ts';
import { fenceIn } from './node-fence.ts';
import type { ArtifactRecord, AttemptRecord, NodeLease } from './records.ts';
import { recordArtifactIn } from './artifact-records.ts';
import { attemptColumns, attemptRecord, type AttemptPatch } from './row-records.ts';
import type { AttemptsTable, Database, Db } from './schema.ts';

/** A new attempt's row: where it starts, its log, and the first step's job when it is known already. */
export interface NewAttempt {
  readonly migrationId: string;
  readonly number: number;
  readonly fromStep: number;
  readonly logRef: string;
  readonly firstJob?: { readonly step: number; readonly ref: string } | undefined;
  readonly startedAt: string;
  /** The node starting it. */
  readonly node: string | null;
}

export interface BeginStepArgs {
  migrationId: string;
  issue: string;
  number: number;
  step: number;
  ref: string;
  now: Date;
  /** The attempt's node's lease: the step starts only while it is current (FERRY_FENCED otherwise). */
  lease?: NodeLease | undefined;
}

export class AttemptRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
  }

  async list(migrationId: string): Promise<AttemptRecord[]> {
    const rows = await this.db.selectFrom('attempts').selectAll().where('migration_id', '=', migrationId).orderBy('number').execute();
    return rows.map(attemptRecord);
  }

  async get(migrationId: string, number: number): Promise<AttemptRecord | null> {
    const row = await this.db.selectFrom('attempts').selectAll().where('migration_id', '=', migrationId).where('number', '=', number).executeTakeFirst();
    return row ? attemptRecord(row) : null;
  }

  /** A later step of a running attempt: its job recorded (intent) and set on the attempt, in one transaction. */
  async beginStep(args: BeginStepArgs): Promise<ArtifactRecord> {
    return this.db.transaction().execute(async (trx) => {
      if (args.lease) await fenceIn(trx, this.dialect, args.lease);
      const artifact = await recordArtifactIn(
        trx,
        { migrationId: args.migrationId, issue: args.issue, kind: 'job', ref: args.ref, node: args.lease?.name ?? null },
        args.now,
      );
      await trx
        .updateTable('attempts')
        .set({ step: args.step, job_ref: args.ref })
        .where('migration_id', '=', args.migrationId)
        .where('number', '=', args.number)
        .execute();
      return artifact;
    });
  }
}

export async function insertAttemptIn(db: Db, a: NewAttempt): Promise<void> {
  await db.insertInto('attempts').values(attemptRow(a)).execute();
}

/** A new attempt's row, as inserted. */
export function attemptRow(a: NewAttempt): Selectable<AttemptsTable> {
  return {
    migration_id: a.migrationId,
    number: a.number,
    from_step: a.fromStep,
    step: a.firstJob?.step ?? null,
    job_ref: a.firstJob?.ref ?? null,
    log_ref: a.logRef,
    started_at: a.startedAt,
    ended_at: null,
    exit_code: null,
    signal: null,
    cause: null,
    detail: null,
    node: a.node,
    taken_over_at: null,
    late_outcome_at: null,
  };
}

export async function updateAttemptIn(db: Db, migrationId: string, number: number, patch: AttemptPatch): Promise<void> {
  await db.updateTable('attempts').set(attemptColumns(patch)).where('migration_id', '=', migrationId).where('number', '=', number).execute();
}
