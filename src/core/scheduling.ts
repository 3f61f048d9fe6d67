/**
 * The scheduling decision (TR-41): which queued migrations start now.
 *
 * - Migrations of distinct tenants run concurrently.
 * - A tenant has at most one holder; a queued migration whose tenant is held by another migration
 *   waits. Among the queued migrations of one free tenant, the oldest goes first.
 * - The sum of declared peaks of running migrations never exceeds the node's capacity. A migration
 *   that does not fit now waits; a smaller one of another tenant behind it may start (backfill).
 */
import type { Resources } from './types.ts';

export interface QueuedMigration {
  readonly id: string;
  readonly tenant: string;
  readonly peak: Resources;
  /** Filing order; lower is older. */
  readonly seq: number;
}

export interface SchedulingInput {
  /** Migrations in `queued`, any order. */
  readonly queued: readonly QueuedMigration[];
  /** tenant → id of the migration that holds it (running, held, or queued after an action). */
  readonly holders: ReadonlyMap<string, string>;
  /** Sum of the peaks of migrations whose attempt is running now. */
  readonly inUse: Resources;
  readonly capacity: Resources;
}

export function decideStarts(input: SchedulingInput): string[] {
  const used = new Map<string, number>(Object.entries(input.inUse));
  const taken = new Set<string>();
  const starts: string[] = [];
  const byAge = [...input.queued].sort((a, b) => a.seq - b.seq);
  for (const m of byAge) {
    if (taken.has(m.tenant)) continue;
    const holder = input.holders.get(m.tenant);
    if (holder !== undefined && holder !== m.id) continue;
    taken.add(m.tenant);
    if (!fits(m.peak, used, input.capacity)) continue;
    for (const [d, v] of Object.entries(m.peak)) used.set(d, (used.get(d) ?? 0) + v);
    starts.push(m.id);
  }
  return starts;
}

function fits(peak: Resources, used: ReadonlyMap<string, number>, capacity: Resources): boolean {
  for (const [d, v] of Object.entries(peak)) {
    // Own properties only: a dimension named like an Object.prototype member has no capacity.
    const cap = Object.hasOwn(capacity, d) ? capacity[d] : undefined;
    if (cap !== undefined && (used.get(d) ?? 0) + v > cap) return false;
  }
  return true;
}
