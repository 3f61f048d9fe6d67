import { sql, type Kysely } from 'kysely';

/**
 * Job confinement: the identity a tenant's jobs run as (and its data belongs to), whether its
 * container jobs may run as root, and whether each migration's attempt ran confined.
 */
export function tenantIdentity() {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // Nullable: tenants registered before this migration get an identity from the uid range on the next start.
      await db.schema.alterTable('tenants').addColumn('run_as_uid', 'integer').execute();
      await db.schema.alterTable('tenants').addColumn('run_as_gid', 'integer').execute();
      await db.schema
        .alterTable('tenants')
        .addColumn('allow_root', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // Two tenants sharing a uid could read each other's data: the store refuses it.
      await sql`CREATE UNIQUE INDEX one_tenant_per_uid ON tenants (run_as_uid) WHERE run_as_uid IS NOT NULL`.execute(db);
      await db.schema.alterTable('migrations').addColumn('isolated', 'integer').execute();
    },
  };
}
