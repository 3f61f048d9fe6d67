import { sql, type Kysely } from 'kysely';
import type { SqlDialect } from '../dialect.ts';

/** The first schema. Append-only: never edit a migration that has shipped; add the next number. */
export function initial(dialect: SqlDialect) {
  const autoId = dialect === 'postgres' ? 'bigserial' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('steady_state', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('migrations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('issue', 'text', (c) => c.notNull())
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('request', 'text', (c) => c.notNull())
        .addColumn('peak', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('verdict', 'text', (c) => c.notNull())
        .addColumn('filed_by', 'text', (c) => c.notNull())
        .addColumn('next_from_step', 'integer')
        .addColumn('next_checkpoint', 'text')
        .addColumn('next_restore', 'text')
        .addColumn('failed_step', 'integer')
        .addColumn('held_cause', 'text')
        .addColumn('held_detail', 'text')
        .addColumn('checkpoint', 'text')
        .addColumn('checkpoint_step', 'integer')
        .addColumn('progress_done', 'bigint')
        .addColumn('progress_total', 'bigint')
        .addColumn('limits_enforced', 'integer')
        .addColumn('snapshot_ref', 'text')
        .addColumn('snapshot_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      // TR-41 in the database itself: at most one holder per tenant. Same predicate as core holdsTenant().
      await sql`CREATE UNIQUE INDEX one_holder_per_tenant ON migrations (tenant)
                WHERE state IN ('running', 'held') OR (state = 'queued' AND attempts > 0)`.execute(db);
      await db.schema.createIndex('migrations_by_state').on('migrations').columns(['state', 'created_at']).execute();
      await db.schema.createIndex('migrations_by_issue').on('migrations').column('issue').execute();
      await db.schema.createIndex('migrations_by_tenant').on('migrations').columns(['tenant', 'created_at']).execute();

      await db.schema
        .createTable('attempts')
        .addColumn('migration_id', 'text', (c) => c.notNull().references('migrations.id'))
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('from_step', 'integer', (c) => c.notNull())
        .addColumn('step', 'integer')
        .addColumn('job_ref', 'text')
        .addColumn('log_ref', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('ended_at', 'text')
        .addColumn('exit_code', 'integer')
        .addColumn('signal', 'text')
        .addColumn('cause', 'text')
        .addColumn('detail', 'text')
        .addPrimaryKeyConstraint('attempts_pk', ['migration_id', 'number'])
        .execute();

      await db.schema
        .createTable('events')
        .addColumn('id', autoId, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('migration_id', 'text', (c) => c.notNull().references('migrations.id'))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('from_state', 'text')
        .addColumn('to_state', 'text')
        .addColumn('reason', 'text')
        .addColumn('detail', 'text')
        .execute();
      await db.schema.createIndex('events_by_migration').on('events').columns(['migration_id', 'id']).execute();

      await db.schema
        .createTable('artifacts')
        .addColumn('id', autoId, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('migration_id', 'text', (c) => c.notNull().references('migrations.id'))
        .addColumn('issue', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('ref', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text')
        .addColumn('removed_at', 'text')
        .addUniqueConstraint('artifacts_kind_ref', ['kind', 'ref'])
        .execute();
      await db.schema.createIndex('artifacts_by_issue').on('artifacts').columns(['issue', 'state']).execute();
      await db.schema.createIndex('artifacts_by_migration').on('artifacts').column('migration_id').execute();

      await db.schema
        .createTable('issues')
        .addColumn('ref', 'text', (c) => c.primaryKey())
        .addColumn('closed_at', 'text')
        .addColumn('closed_by', 'text')
        .addColumn('teardown_done_at', 'text')
        .execute();
    },
  };
}
