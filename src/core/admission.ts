/**
 * The admission rule (TR-40), as one pure function used at filing time (API, CLI `check`, issue
 * threads) and again at the runner's gate before every attempt.
 *
 * For every declared dimension d: peak[d] <= 2 * steady[d]. Exactly 2x passes; one unit more fails.
 * Fail closed: an unknown tenant, or a dimension the tenant has no steady-state for, is rejected.
 * A peak that the node (or cluster) can never provide is rejected too. The peak must declare every
 * dimension of the tenant's steady-state (an undeclared one would run unlimited), and every declared
 * dimension must be one the substrate enforces as a hard limit.
 */
import { formatQuantity } from './quantity.ts';
import type { DimensionVerdict, RejectionReason, Resources, Tenant, Verdict } from './types.ts';

/** The multiple of steady-state a declared peak may reach. */
export const PEAK_FACTOR = 2;

export function admit(input: {
  readonly tenantId: string;
  readonly peak: Resources;
  /** Only its id and steady-state are read. */
  readonly tenant: Pick<Tenant, 'id' | 'steadyState'> | null;
  readonly capacity: Resources;
  /**
   * Dimensions the substrate enforces. Default null: no such check, for a substrate that enforces no
   * limits at all (recorded on the migration as limitsEnforced: false). The runner always passes it.
   */
  readonly enforced?: readonly string[] | null;
  readonly now: Date;
}): Verdict {
  const { tenantId, peak, tenant, capacity } = input;
  const enforced = input.enforced ?? null;
  const reasons: RejectionReason[] = [];
  const dimensions: DimensionVerdict[] = [];

  if (!tenant) {
    reasons.push({
      code: 'UNKNOWN_TENANT',
      message: `tenant ${tenantId} is not known to Ferry; register it with its steady-state (PUT /v1/tenants/${tenantId}) or fix the tenant name`,
    });
  }

  for (const dimension of Object.keys(tenant?.steadyState ?? {})) {
    if (Object.hasOwn(peak, dimension)) continue;
    reasons.push({
      code: 'PEAK_MISSING_DIMENSION',
      dimension,
      message: `tenant ${tenantId} has a steady-state ${dimension}, so the peak must declare ${dimension} too (an undeclared dimension would run unlimited); add ${dimension} to the peak`,
    });
  }

  for (const [dimension, value] of Object.entries(peak)) {
    // Own properties only: a dimension named like an Object.prototype member must not find one.
    const steady = tenant ? own(tenant.steadyState, dimension) : undefined;
    // Compare in bigint: 2 * steady may pass Number.MAX_SAFE_INTEGER.
    const cap = steady === undefined ? null : BigInt(steady) * BigInt(PEAK_FACTOR);
    const available = own(capacity, dimension);
    let ok = true;
    if (tenant && steady === undefined) {
      ok = false;
      reasons.push({
        code: 'NO_STEADY_STATE',
        dimension,
        peak: value,
        message: `tenant ${tenantId} has no steady-state ${dimension}, so a ${dimension} peak cannot be admitted; declare the tenant's steady-state ${dimension} or drop ${dimension} from the peak`,
      });
    } else if (cap !== null && BigInt(value) > cap) {
      ok = false;
      reasons.push({
        code: 'PEAK_EXCEEDS_CAP',
        dimension,
        peak: value,
        steadyState: steady as number,
        cap: capNumber(cap),
        message: `${dimension} peak ${formatQuantity(dimension, value)} exceeds ${PEAK_FACTOR} x steady-state ${formatQuantity(dimension, steady as number)} of tenant ${tenantId} (cap ${formatCap(dimension, cap)}); lower the peak or raise the tenant's steady-state`,
      });
    }
    if (enforced !== null && !enforced.includes(dimension)) {
      ok = false;
      reasons.push({
        code: 'DIMENSION_NOT_ENFORCED',
        dimension,
        peak: value,
        message: `this node cannot enforce a ${dimension} limit (it enforces ${enforced.join(', ') || 'none'}), so a ${dimension} peak cannot be admitted; drop ${dimension} from the peak and the tenant's steady-state, or run it on a substrate that enforces it`,
      });
    }
    if (available !== undefined && value > available) {
      ok = false;
      reasons.push({
        code: 'PEAK_EXCEEDS_CAPACITY',
        dimension,
        peak: value,
        ...(steady === undefined ? {} : { steadyState: steady }),
        cap: available,
        message: `${dimension} peak ${formatQuantity(dimension, value)} is more than this node can ever provide (${formatQuantity(dimension, available)}); lower the peak or run it on a larger node`,
      });
    }
    dimensions.push({
      dimension,
      peak: value,
      steadyState: steady ?? null,
      cap: cap === null ? null : capNumber(cap),
      capacity: available ?? null,
      ok: ok && tenant !== null,
    });
  }

  return {
    ok: reasons.length === 0,
    tenant: tenantId,
    steadyState: tenant ? tenant.steadyState : null,
    capacity,
    dimensions,
    reasons,
    at: input.now.toISOString(),
  };
}

function own(r: Resources, key: string): number | undefined {
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

function capNumber(cap: bigint): number {
  return cap > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(cap);
}

function formatCap(dimension: string, cap: bigint): string {
  return cap > BigInt(Number.MAX_SAFE_INTEGER) ? cap.toString() : formatQuantity(dimension, Number(cap));
}

/** One line per reason, for CLI output and issue comments. */
export function describeRejection(verdict: Verdict): string {
  return verdict.reasons.map((r) => r.message).join('\n');
}
