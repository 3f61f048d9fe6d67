/** What the runner's parts (scheduler loop, attempt supervisor, teardown, tenant registration, node lifecycle, cancellation) share with its façade. */
import type { MigrationRecord, NodeLease } from '../store/records.ts';
import type { MigrationPatch, Store, TransitionEvent } from '../store/store.ts';
import type { Substrate } from '../substrates/substrate.ts';
import type { GateLimits } from './gate.ts';
import type { RunnerMetrics } from './metrics.ts';
import type { LogFn } from '../core/log.ts';

/** Who made a move, for the migration's history. */
export interface Actor {
  readonly name: string;
}

/** The actor of the moves Ferry makes by itself. */
export const SYSTEM = 'ferry';

export interface RunnerContext {
  readonly store: Store;
  readonly substrate: Substrate;
  readonly metrics: RunnerMetrics;
  readonly now: () => Date;
  readonly log: LogFn;
  /** Attempt logs live here: <logsDir>/<migration>/attempt-<n>.log */
  readonly logsDir: string;
  /** True before start() and from stop() on: no scheduling pass begins, no further step starts. */
  isStopped(): boolean;
  /** What the admission gate judges against now on this node: its capacity and the dimensions its substrate enforces. */
  gateLimits(): GateLimits;
  /** This node's name: it starts the attempts of the tenants living on it, and only those. */
  readonly nodeName: string;
  /** This node's current lease, for the writes it makes on its own attempts; FERRY_FENCED when it has none (taken over). */
  lease(): NodeLease;
  /** Whether this node may start an attempt or a step now (its lease is surely its own). */
  canStart(): boolean;
  /** The store refused a write as fenced: stop acting on what this node supervised, and join again. */
  onFenced(): void;
  /** Tenants with a job still running from an attempt another node took over: nothing new of theirs starts here. */
  readonly blockedTenants: ReadonlySet<string>;
  /** Tenants whose registration through this node is handing their data over now: the scheduler leaves them to it. */
  readonly adopting: ReadonlySet<string>;
  /** When each migration entered `queued` (performance.now()), for the queue-to-start metric. */
  readonly queuedAt: Map<string, number>;
  /** Move a migration by a lifecycle event from the state it was read in (see Runner). */
  move(m: MigrationRecord, event: TransitionEvent, patch?: MigrationPatch): Promise<MigrationRecord>;
  /** Ask for a scheduling pass soon. */
  poke(): void;
}
