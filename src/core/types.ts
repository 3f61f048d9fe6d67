/**
 * Ferry's terminology, as fixed by the design (docs/architecture.md).
 *
 * - Tenant: a long-running occupant of the platform, with a steady-state resource profile and
 *   its tenant data (a folder, a volume). Ferry never deletes tenant data on its own.
 * - Migration: one request, filed in an engagement thread (an issue), to move data into one
 *   destination tenant. It runs as one or more attempts; each attempt runs the steps in order.
 * - Declared peak: the most a migration's job may use, per dimension. Becomes its hard limits.
 * - Attempt: one execution of the steps, numbered from 1. Only an operator's action creates n+1.
 * - Checkpoint: an opaque string a step reports so that `resume` can continue from it.
 * - Artifact: anything Ferry created for a migration that is not tenant data (scratch, logs,
 *   snapshot, processes, containers, cgroups). Recorded before it is created; removed on closure.
 * - Holder: the migration that holds its tenant, from the start of its first attempt until it is
 *   terminal. A tenant has at most one.
 */

/** Resource quantities per dimension: `cpu` in millicores, `memory` in bytes, others in base units. */
export type Resources = Readonly<Record<string, number>>;

export const MIGRATION_STATES = [
  'filed',
  'approved',
  'queued',
  'running',
  'held',
  'succeeded',
  'rejected',
  'accepted-partial',
  'abandoned',
  'cancelled',
] as const;
export type MigrationState = (typeof MIGRATION_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<MigrationState> = new Set(['rejected', 'succeeded', 'accepted-partial', 'abandoned', 'cancelled']);

export const RECOVERY_ACTIONS = ['wipe-and-retry', 'resume', 'accept-partial', 'abandon'] as const;
export type RecoveryAction = (typeof RECOVERY_ACTIONS)[number];

/** Why an attempt failed. `null` on an attempt that succeeded or still runs. */
export const FAILURE_CAUSES = ['exit-code', 'limit-exceeded', 'deadline', 'lost', 'cancelled'] as const;
export type FailureCause = (typeof FAILURE_CAUSES)[number];

export type SnapshotPolicy = 'auto' | 'always' | 'never';

export interface Step {
  readonly name: string;
  readonly run: readonly string[];
  /** Milliseconds; undefined means no deadline. */
  readonly timeoutMs?: number | undefined;
}

/** A validated, normalised migration request. */
export interface MigrationRequest {
  readonly issue: string;
  readonly tenant: string;
  readonly peak: Resources;
  readonly steps: readonly Step[];
  readonly wipe?: readonly string[] | undefined;
  readonly snapshot: SnapshotPolicy;
  readonly image?: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  /** Names in `env` whose values are secret: never shown by the API, the CLI, threads or logs. Default none. */
  readonly secretEnv?: readonly string[] | undefined;
}

/** A numeric user and group a tenant's jobs run as. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

export interface Tenant {
  readonly id: string;
  readonly steadyState: Resources;
  /** Where the tenant's data lives on the substrate (folder, volume name). */
  readonly data: string;
  /**
   * The identity the tenant's jobs run as and its data belongs to: the admin's `runAs`, or one Ferry
   * gave it from its uid range. Never root, unless `allowRoot` (container substrate only).
   */
  readonly runAs: Identity;
  /** Container jobs of this tenant may run as root (still without new privileges). Default false. */
  readonly allowRoot: boolean;
  /**
   * Where its jobs run on a substrate spanning several hosts: on the swarm substrate, the swarm node
   * that holds its data (a node name, a node id, or a placement constraint such as
   * `node.labels.tenant==shop`). Null or absent: the substrate's default.
   */
  readonly placement?: string | null | undefined;
}

export type RejectionCode =
  | 'PEAK_EXCEEDS_CAP'
  | 'UNKNOWN_TENANT'
  | 'NO_STEADY_STATE'
  | 'PEAK_EXCEEDS_CAPACITY'
  /** The tenant has a steady-state for a dimension the peak does not declare: it would run unlimited. */
  | 'PEAK_MISSING_DIMENSION'
  /** The substrate cannot enforce this dimension as a hard limit. */
  | 'DIMENSION_NOT_ENFORCED';

export interface RejectionReason {
  readonly code: RejectionCode;
  readonly dimension?: string;
  readonly peak?: number;
  readonly steadyState?: number;
  readonly cap?: number;
  readonly message: string;
}

export interface DimensionVerdict {
  readonly dimension: string;
  readonly peak: number;
  readonly steadyState: number | null;
  readonly cap: number | null;
  readonly capacity: number | null;
  readonly ok: boolean;
}

/** The outcome of admit(): records the steady-state it was computed from, so drift is visible. */
export interface Verdict {
  readonly ok: boolean;
  readonly tenant: string;
  readonly steadyState: Resources | null;
  readonly capacity: Resources;
  readonly dimensions: readonly DimensionVerdict[];
  readonly reasons: readonly RejectionReason[];
  readonly at: string;
}
