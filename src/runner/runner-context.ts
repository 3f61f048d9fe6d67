/** What the runner's parts (scheduler loop, attempt supervisor, teardown) share with its façade. */
import type { MigrationRecord } from '../store/records.ts';
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
  /** What the admission gate judges against now: the capacity and the dimensions the substrate enforces. */
  gateLimits(): GateLimits;
  /** When each migration entered `queued` (performance.now()), for the queue-to-start metric. */
  readonly queuedAt: Map<string, number>;
  /** Move a migration by a lifecycle event from the state it was read in (see Runner). */
  move(m: MigrationRecord, event: TransitionEvent, patch?: MigrationPatch): Promise<MigrationRecord>;
  /** Ask for a scheduling pass soon. */
  poke(): void;
}
