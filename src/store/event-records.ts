/** A migration's event history: one row per state change or notable happening, appended, never changed. */
import { sql, type Insertable, type Kysely } from 'kysely';
import type { MigrationState } from '../core/types.ts';
import type { EventRecord } from './records.ts';
import { eventRecord } from './row-records.ts';
import type { Database, Db, EventsTable } from './schema.ts';

export interface EventInput {
  readonly actor: string;
  readonly kind: string;
  readonly reason?: string | null | undefined;
  readonly detail?: unknown;
}

export class EventRecords {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  /** An event that changes no state (`from` and `to` are both `state`). */
  async append(migrationId: string, state: MigrationState, event: EventInput, now: Date): Promise<void> {
    await insertEvent(this.db, migrationId, state, state, event, now.toISOString());
  }

  async list(migrationId: string): Promise<EventRecord[]> {
    const rows = await this.db.selectFrom('events').selectAll().where('migration_id', '=', migrationId).orderBy('id').execute();
    return rows.map(eventRecord);
  }
}

/** An event's row. */
export function eventRow(migrationId: string, from: MigrationState | null, to: MigrationState | null, e: EventInput, at: string): Insertable<EventsTable> {
  return {
    migration_id: migrationId,
    at,
    actor: e.actor,
    kind: e.kind,
    from_state: from,
    to_state: to,
    reason: e.reason ?? null,
    detail: e.detail === undefined ? null : JSON.stringify(e.detail),
  };
}

/** Append an event; `db` is the transaction of the change it records, when there is one. */
export async function insertEvent(
  db: Db,
  migrationId: string,
  from: MigrationState | null,
  to: MigrationState | null,
  e: EventInput,
  at: string,
): Promise<void> {
  await db
    .insertInto('events')
    .values(eventRow(migrationId, from, to, e, at))
    .execute();
}

/** The columns eventsOf() selects, in its order. */
export const EVENT_COLUMNS = ['migration_id', 'at', 'actor', 'kind', 'from_state', 'to_state', 'reason', 'detail'] as const;

/**
 * PostgreSQL: `events` (in order) as rows of the migration a CTE named `source` wrote, in
 * EVENT_COLUMNS order: none when it wrote no row, so a compare-and-set that lost logs nothing.
 */
export function eventsOf(source: string, events: ReadonlyArray<Insertable<EventsTable>>) {
  const rows = events.map((e) => sql`(${e.at}, ${e.actor}, ${e.kind}, ${e.from_state}, ${e.to_state}, ${e.reason}, ${e.detail})`);
  return sql`SELECT ${sql.ref(`${source}.id`)}, v.* FROM ${sql.table(source)},
    (VALUES ${sql.join(rows)}) AS v (at, actor, kind, from_state, to_state, reason, detail)`;
}
