/**
 * PostgreSQL: an attempt's start and its end, each as one statement (one round trip, one commit),
 * with every check of the transaction it replaces as a condition of the same statement: the node's
 * lease (its row locked for share, as fenceIn does), the tenant's node (start), the attempt still
 * open and the node's own (end). A data-modifying CTE writes only when the migration's UPDATE did,
 * so a statement that returns no row wrote nothing; the caller then reads why, to say it.
 *
 * SQLite keeps the transaction of migration-transitions.ts: there a statement is a function call,
 * not a round trip.
 */
import { sql, type Insertable, type RawBuilder, type Selectable, type Updateable } from 'kysely';
import { eventsOf } from './event-records.ts';
import { movedNoticeOf } from './notices.ts';
import type { NodeLease } from './records.ts';
import type { ArtifactsTable, AttemptsTable, Db, EventsTable, MigrationsTable } from './schema.ts';
import type { NewAttempt } from './attempt-records.ts';

/** What every attempt move writes to its migration: the SET of its UPDATE, the events it appends, the notice's origin. */
export interface MigrationWrite {
  readonly id: string;
  readonly set: Updateable<MigrationsTable>;
  readonly events: ReadonlyArray<Insertable<EventsTable>>;
  readonly origin: string;
  readonly lease: NodeLease | undefined;
}

/** queued → running with the attempt's row and its artifacts' intents. Undefined: nothing written. */
export async function startAttemptStatement(
  db: Db,
  w: MigrationWrite,
  attempt: NewAttempt,
  artifacts: ReadonlyArray<{ kind: string; ref: string }>,
  recordedAt: string,
): Promise<{ row: Selectable<MigrationsTable>; recorded: Array<Selectable<ArtifactsTable>> } | undefined> {
  const guards: RawBuilder<unknown>[] = [];
  const ctes = fence(w.lease, guards);
  if (w.lease) {
    // Only the tenant's node starts it: the tenant may have moved since the scheduler read its queue.
    ctes.push(sql`home AS (SELECT 1 FROM tenants WHERE id = (SELECT tenant FROM migrations WHERE id = ${w.id}) AND node = ${w.lease.name} FOR SHARE)`);
    guards.push(sql`EXISTS (SELECT 1 FROM home)`);
  }
  ctes.push(moved(w, 'queued', guards));
  ctes.push(sql`opened AS (
    INSERT INTO attempts (migration_id, number, from_step, step, job_ref, log_ref, started_at, node)
    SELECT moved.id, ${attempt.number}, ${attempt.fromStep}, ${attempt.firstJob?.step ?? null}, ${attempt.firstJob?.ref ?? null},
      ${attempt.logRef}, ${attempt.startedAt}, ${attempt.node} FROM moved)`);
  ctes.push(logged(w));
  if (artifacts.length > 0) {
    const rows = artifacts.map((a) => sql`(${a.kind}, ${a.ref})`);
    // Idempotent per (kind, ref), as recordArtifactsIn: an artifact already recorded is read after.
    ctes.push(sql`recorded AS (
      INSERT INTO artifacts (migration_id, issue, kind, ref, state, recorded_at, node)
      SELECT moved.id, moved.issue, v.kind, v.ref, 'intended', ${recordedAt}, ${attempt.node}
      FROM moved, (VALUES ${sql.join(rows)}) AS v (kind, ref)
      ON CONFLICT (kind, ref) DO NOTHING RETURNING *)`);
  }
  const recorded = artifacts.length > 0 ? sql`(SELECT coalesce(json_agg(recorded), '[]') FROM recorded)::text` : sql`'[]'`;
  const result = await sql<Selectable<MigrationsTable> & { recorded: string }>`WITH ${sql.join(ctes)}
    SELECT moved.*, ${movedNoticeOf('moved', w.origin)} AS told, ${recorded} AS recorded FROM moved`.execute(db);
  const first = result.rows[0];
  if (!first) return undefined;
  const { recorded: json, ...row } = first;
  return { row, recorded: JSON.parse(json) as Array<Selectable<ArtifactsTable>> };
}

/** running → its outcome, with attempt `number` ended, when it is still open and (with a lease) the node's own. Undefined: nothing written. */
export async function finishAttemptStatement(
  db: Db,
  w: MigrationWrite,
  number: number,
  ended: Partial<AttemptsTable>,
): Promise<Selectable<MigrationsTable> | undefined> {
  const guards: RawBuilder<unknown>[] = [sql`attempts = ${number}`];
  const ctes = fence(w.lease, guards);
  const own = w.lease ? sql`AND node = ${w.lease.name}` : sql``;
  ctes.push(sql`open AS (SELECT 1 FROM attempts WHERE migration_id = ${w.id} AND number = ${number} AND ended_at IS NULL ${own} FOR UPDATE)`);
  guards.push(sql`EXISTS (SELECT 1 FROM open)`);
  ctes.push(moved(w, 'running', guards));
  ctes.push(sql`closed AS (UPDATE attempts SET ${setList(ended)} WHERE migration_id = ${w.id} AND number = ${number} AND EXISTS (SELECT 1 FROM moved))`);
  ctes.push(logged(w));
  const result = await sql<Selectable<MigrationsTable>>`WITH ${sql.join(ctes)}
    SELECT moved.*, ${movedNoticeOf('moved', w.origin)} AS told FROM moved`.execute(db);
  const row = result.rows[0];
  if (!row) return undefined;
  delete (row as { told?: unknown }).told;
  return row;
}

/** The node's lease as a CTE (its row locked for share: a takeover waits for this write, or this write sees the new epoch) and a guard. */
function fence(lease: NodeLease | undefined, guards: RawBuilder<unknown>[]): RawBuilder<unknown>[] {
  if (!lease) return [];
  guards.push(sql`EXISTS (SELECT 1 FROM fence)`);
  return [sql`fence AS (SELECT 1 FROM nodes WHERE name = ${lease.name} AND epoch = ${lease.epoch} AND state = 'up' FOR SHARE)`];
}

/** The compare-and-set of the migration from `from`, under `guards`. */
function moved(w: MigrationWrite, from: string, guards: RawBuilder<unknown>[]): RawBuilder<unknown> {
  const where = [sql`id = ${w.id}`, sql`state = ${from}`, ...guards];
  return sql`moved AS (UPDATE migrations SET ${setList(w.set)} WHERE ${sql.join(where, sql` AND `)} RETURNING *)`;
}

function logged(w: MigrationWrite): RawBuilder<unknown> {
  return sql`logged AS (INSERT INTO events (migration_id, at, actor, kind, from_state, to_state, reason, detail) ${eventsOf('moved', w.events)})`;
}

/** `col = value, …` of an UPDATE. */
function setList(set: Record<string, unknown>): RawBuilder<unknown> {
  return sql.join(Object.entries(set).map(([column, value]) => sql`${sql.ref(column)} = ${value}`));
}
