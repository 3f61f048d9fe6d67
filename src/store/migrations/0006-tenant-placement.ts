import type { Kysely } from 'kysely';

/**
 * Where a tenant's jobs are placed on a substrate that spans several hosts (the swarm substrate: a
 * swarm node's name or id, or a placement constraint). Null: the substrate's default.
 */
export function tenantPlacement() {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('tenants').addColumn('placement', 'text').execute();
    },
  };
}
