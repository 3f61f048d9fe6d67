import { sql, type Kysely } from 'kysely';
import type { SqlDialect } from '../dialect.ts';

/**
 * Several nodes over one database: the nodes and their leases, the node each tenant lives on, the
 * node that started each attempt (only it re-attaches and records its outcome), the node that holds
 * each artifact (only it removes it), and the admin token's digest, so that a token works on every
 * node. Records written before nodes existed have no node: the first node that starts adopts them.
 */
export function nodes(dialect: SqlDialect) {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
      await db.schema
        .createTable('nodes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text')
        .addColumn('substrate', 'text', (c) => c.notNull())
        .addColumn('capacity', 'text', (c) => c.notNull())
        // The dimensions the node's substrate enforces (JSON list), or null when it enforces none.
        .addColumn('enforced', 'text')
        // Where its tenants' data goes by default and what it must not overlap (JSON), for registrations through other nodes.
        .addColumn('tenant_home', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull().check(sql`state IN ('up', 'lost', 'left')`))
        // Bumped by every registration and by every takeover: a write carrying an older epoch is refused.
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        // The database's clock (ms since the epoch) at the last renewal: no two hosts' clocks are compared.
        .addColumn('last_seen_ms', sql.raw(bigint), (c) => c.notNull())
        .addColumn('lost_at', 'text')
        .execute();
      await db.schema.alterTable('tenants').addColumn('node', 'text').execute();
      // When the tenant's data was last handed to its identity on its node; null: to do on that node.
      await db.schema.alterTable('tenants').addColumn('adopted_at', 'text').execute();
      // Tenants registered before were handed over at their registration (or their first start since identities).
      await sql`UPDATE tenants SET adopted_at = updated_at WHERE run_as_uid IS NOT NULL`.execute(db);
      await db.schema.alterTable('attempts').addColumn('node', 'text').execute();
      // Set when another node held the attempt `lost` (its node's lease had run out): its job may
      // still be running; the attempt's node watches it on its return and records its real outcome.
      await db.schema.alterTable('attempts').addColumn('taken_over_at', 'text').execute();
      await db.schema.alterTable('attempts').addColumn('late_outcome_at', 'text').execute();
      await db.schema.alterTable('artifacts').addColumn('node', 'text').execute();
      await db.schema
        .createTable('admin_tokens')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await sql`CREATE INDEX attempts_by_node ON attempts (node) WHERE ended_at IS NULL OR (taken_over_at IS NOT NULL AND late_outcome_at IS NULL)`.execute(db);
      await sql`CREATE INDEX artifacts_by_issue_node ON artifacts (issue, node)`.execute(db);
    },
  };
}
