/** The admission gate: admit() against the tenant as stored now, the substrate's capacity and the limits it enforces. */
import { admit } from '../core/admission.ts';
import type { Resources, Verdict } from '../core/types.ts';
import type { Store } from '../store/store.ts';

export interface GateLimits {
  readonly capacity: Resources;
  /** Dimensions the substrate enforces; null when it enforces no limits at all. */
  readonly enforced: readonly string[] | null;
}

/** The limits of the node a tenant lives on (null: not registered, or before nodes existed). */
export type LimitsOfNode = (node: string | null) => GateLimits | Promise<GateLimits>;

/** admit() against the tenant as stored now and the capacity and enforced limits of the node it lives on. */
export async function runGate(store: Store, limitsOf: LimitsOfNode, tenantId: string, peak: Resources, now: Date): Promise<Verdict> {
  const tenant = await store.getTenant(tenantId);
  const limits = await limitsOf(tenant?.node ?? null);
  return admit({ tenantId, peak, tenant, capacity: limits.capacity, enforced: limits.enforced, now });
}
