/** The substrate's view of a stored tenant. */
import { FerryError } from '../core/errors.ts';
import type { Tenant } from '../core/types.ts';
import type { MigrationRecord, TenantRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';

/** Every tenant has an identity once the runner has started. */
export function asTenant(t: TenantRecord): Tenant {
  if (!t.runAs) throw new FerryError('FERRY_INTERNAL', `tenant ${t.id} has no identity yet; restart Ferry to give it one`);
  return { id: t.id, steadyState: t.steadyState, data: t.data, runAs: t.runAs, allowRoot: t.allowRoot, placement: t.placement };
}

/** The tenant of `m` as read just now (`t`; null: it is gone). */
export function tenantRead(m: MigrationRecord, t: TenantRecord | null): Tenant {
  if (!t) throw new FerryError('FERRY_INTERNAL', `tenant ${m.tenant} disappeared`);
  return asTenant(t);
}

/** The tenant a migration moves data into, as stored now. */
export async function tenantOf(store: Store, m: MigrationRecord): Promise<Tenant> {
  return tenantRead(m, await store.getTenant(m.tenant));
}
