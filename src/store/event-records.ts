/** A migration's event history: one row per state change or notable happening, appended, never changed. */
import type { Kysely } from 'kysely';
import type { MigrationState } from '../core/types.ts';
import type { EventRecord } from './records.ts';
import { eventRecord } from './row-records.ts';
import type { Database, Db } from './schema.ts';

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
    .values({
      migration_id: migrationId,
      at,
      actor: e.actor,
      kind: e.kind,
      from_state: from,
      to_state: to,
      reason: e.reason ?? null,
      detail: e.detail === undefined ? null : JSON.stringify(e.detail),
    })
    .execute();
}
