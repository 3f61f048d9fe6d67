/** The admission gate: admit() against the tenant as stored now, the substrate's capacity and the limits it enforces. */
import { admit } from '../core/admission.ts';
import type { Resources, Verdict } from '../core/types.ts';
import type { TenantRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';

export interface GateLimits {
  readonly capacity: Resources;
  /** Dimensions the substrate enforces; null when it enforces no limits at all. */
  readonly enforced: readonly string[] | null;
}

/** The limits of the node a tenant lives on (null: not registered, or before nodes existed). */
export type LimitsOfNode = (node: string | null) => GateLimits | Promise<GateLimits>;

/** What the gate decided, and the tenant as it read it (null: none; the verdict then refuses). */
export interface GateResult {
  readonly verdict: Verdict;
  /** Callers that need the tenant next use this one rather than read it again: it is what was judged. */
  readonly tenant: TenantRecord | null;
}

/** admit() against the tenant as stored now and the capacity and enforced limits of the node it lives on. */
export async function runGate(store: Store, limitsOf: LimitsOfNode, tenantId: string, peak: Resources, now: Date): Promise<GateResult> {
  const tenant = await store.getTenant(tenantId);
  const limits = await limitsOf(tenant?.node ?? null);
  return { verdict: admit({ tenantId, peak, tenant, capacity: limits.capacity, enforced: limits.enforced, now }), tenant };
}
