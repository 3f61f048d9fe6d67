/**
 * Which migration holds its tenant, in SQL: core's HOLDER_RULE as a filter on migrations, and the
 * partial unique index (schema migration 0001) that lets a tenant have one holder at most.
 */
import type { ExpressionBuilder } from 'kysely';
import { HOLDER_RULE } from '../core/lifecycle.ts';
import type { Database, Db } from './schema.ts';
import type { UniqueIndex } from './unique-violation.ts';

// `migrations.tenant` is unique only through this partial index, so SQLite's column name identifies it.
export const ONE_HOLDER_PER_TENANT: UniqueIndex = { name: 'one_holder_per_tenant', sqliteColumns: 'migrations.tenant' };

/** Core's HOLDER_RULE as a filter on migrations. */
export function holdsItsTenant(eb: ExpressionBuilder<Database, 'migrations'>) {
  return eb.or([eb('state', 'in', [...HOLDER_RULE.always]), eb.and([eb('state', 'in', [...HOLDER_RULE.afterAnAttempt]), eb('attempts', '>', 0)])]);
}

/** The migration holding `tenant`, if any. */
export async function holderOf(db: Db, tenant: string): Promise<string | null> {
  const row = await db.selectFrom('migrations').select('id').where('tenant', '=', tenant).where(holdsItsTenant).executeTakeFirst();
  return row?.id ?? null;
}
