import { sql, type Kysely } from 'kysely';
import type { SqlDialect } from '../dialect.ts';

/** Engagement threads: delivery ids seen, thread addresses, the comment outbox, status comment ids. */
export function tracker(dialect: SqlDialect) {
  const autoId = dialect === 'postgres' ? 'bigserial' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('tracker_deliveries')
        .addColumn('tracker', 'text', (c) => c.notNull())
        .addColumn('delivery_id', 'text', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tracker_deliveries_pk', ['tracker', 'delivery_id'])
        .execute();
      await db.schema.createIndex('tracker_deliveries_by_time').on('tracker_deliveries').column('received_at').execute();

      await db.schema
        .createTable('tracker_threads')
        .addColumn('issue', 'text', (c) => c.primaryKey())
        .addColumn('tracker', 'text', (c) => c.notNull())
        .addColumn('url', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tracker_outbox')
        .addColumn('id', autoId, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('tracker', 'text', (c) => c.notNull())
        .addColumn('issue', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('migration_id', 'text')
        .addColumn('dedupe_key', 'text')
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_at', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('comment_id', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('sent_at', 'text')
        .execute();
      await db.schema.createIndex('tracker_outbox_by_state').on('tracker_outbox').columns(['state', 'id']).execute();
      await db.schema.createIndex('tracker_outbox_by_migration').on('tracker_outbox').columns(['migration_id', 'kind', 'id']).execute();
      await sql`CREATE UNIQUE INDEX tracker_outbox_dedupe ON tracker_outbox (dedupe_key) WHERE dedupe_key IS NOT NULL`.execute(db);
      // Coalescing in the database: at most one pending status edit per migration; newer bodies replace it.
      await sql`CREATE UNIQUE INDEX tracker_outbox_one_pending_status ON tracker_outbox (migration_id)
                WHERE kind = 'status' AND state = 'pending'`.execute(db);

      await db.schema
        .createTable('tracker_status_comments')
        .addColumn('migration_id', 'text', (c) => c.primaryKey())
        .addColumn('tracker', 'text', (c) => c.notNull())
        .addColumn('issue', 'text', (c) => c.notNull())
        .addColumn('comment_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  };
}
