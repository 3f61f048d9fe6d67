/** The admission gate: admit() against the tenant as stored now and the substrate's capacity. */
import { admit } from '../core/admission.ts';
import type { Resources, Tenant, Verdict } from '../core/types.ts';
import type { Store } from '../store/store.ts';

export async function runGate(store: Store, capacity: Resources, tenantId: string, peak: Resources, now: Date): Promise<Verdict> {
  const record = await store.getTenant(tenantId);
  const tenant: Tenant | null = record ? { id: record.id, steadyState: record.steadyState, data: record.data } : null;
  return admit({ tenantId, peak, tenant, capacity, now });
}
