/**
 * The gate's limits for a tenant on any node: this node's own, live, or what another node
 * registered, kept here for a short while instead of read on every filing and approval.
 */
import type { Store } from '../store/store.ts';
import type { GateLimits } from './gate.ts';

/**
 * How long another node's registered limits are used without reading them again, in ms. A node's
 * limits change only when it joins (a start or a rejoin), which sends no notice, so they are kept
 * this briefly rather than until told: a filing or approval this soon after another node joined
 * again is judged as it would have been just before. What runs never rests on them: the tenant's
 * node gates every attempt again with its own live limits before it starts it.
 */
export const NODE_LIMITS_FRESH_MS = 2000;

export interface NodeLimitsOptions {
  readonly store: Store;
  /** This node's name: its own limits are never cached. */
  readonly self: string;
  /** This node's limits now. */
  readonly own: () => GateLimits;
  /** A monotonic clock in ms (default performance.now). */
  readonly clock?: () => number;
  /** Default NODE_LIMITS_FRESH_MS. */
  readonly freshMs?: number;
}

export class NodeLimits {
  private readonly opts: NodeLimitsOptions;
  private readonly clock: () => number;
  /**
   * Per other node: its limits (null: not registered, so the gate uses this node's) and when the
   * read began. The read itself is kept, so that gates at the same moment share one.
   */
  private readonly known = new Map<string, { readonly limits: Promise<GateLimits | null>; readonly readAt: number }>();

  constructor(opts: NodeLimitsOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? (() => performance.now());
  }

  /** The gate's limits for a tenant on `node`: this node's own, or what that node registered. */
  readonly of = async (node: string | null): Promise<GateLimits> => {
    if (node === null || node === this.opts.self) return this.opts.own();
    const freshMs = this.opts.freshMs ?? NODE_LIMITS_FRESH_MS;
    let entry = this.known.get(node);
    if (!entry || this.clock() - entry.readAt >= freshMs) {
      const read = this.opts.store.getNode(node).then((other) => (other ? { capacity: other.capacity, enforced: other.enforced } : null));
      const fresh = { limits: read, readAt: this.clock() };
      this.known.set(node, fresh);
      // A failed read is not kept: the next gate reads again.
      void read.catch(() => {
        if (this.known.get(node) === fresh) this.known.delete(node);
      });
      entry = fresh;
    }
    return (await entry.limits) ?? this.opts.own();
  };
}
