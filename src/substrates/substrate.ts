/**
 * The Substrate seam: where migration jobs execute. One implementation per kind (`process`,
 * `container`, `kubernetes`); every one passes the same lifecycle suite.
 *
 * The runner records every artifact (intent first, then created) before asking the substrate to
 * create it, so refs are computed by the substrate up front (`*Ref` methods are pure).
 * A job is addressed by its ref alone (`jobRef`): after a runner restart, `watch(ref)` re-attaches
 * to it or reports it `lost`. Nothing here ever re-runs a job.
 */
import type { FailureCause, Resources, Tenant } from '../core/types.ts';

export type SubstrateKind = 'process' | 'container' | 'swarm' | 'kubernetes';

/** Every artifact kind Ferry creates. Tenant data is never one of them. */
export type ArtifactKind = 'scratch' | 'log' | 'snapshot' | 'job';

/** Labels every job object carries (TR-38). */
export function jobLabels(spec: Pick<StepSpec, 'migrationId' | 'attempt' | 'issue' | 'tenant' | 'stepIndex'>): Record<string, string> {
  return {
    'ferry.role': 'migration',
    'ferry.migration': spec.migrationId,
    'ferry.attempt': String(spec.attempt),
    'ferry.step': String(spec.stepIndex),
    'ferry.issue': spec.issue,
    'ferry.tenant': spec.tenant.id,
  };
}

export interface StepSpec {
  readonly migrationId: string;
  readonly issue: string;
  readonly tenant: Tenant;
  readonly attempt: number;
  /** Index in the request's steps; -1 is the request's `wipe` step. */
  readonly stepIndex: number;
  readonly stepName: string;
  readonly argv: readonly string[];
  /** The request's env plus FERRY_MIGRATION_ID, FERRY_ATTEMPT, FERRY_STEP, FERRY_TENANT and, on resume, FERRY_CHECKPOINT. The substrate adds FERRY_TENANT_DATA and FERRY_SCRATCH. */
  readonly env: Readonly<Record<string, string>>;
  /** The declared peak: becomes the job's hard limits. */
  readonly limits: Resources;
  readonly timeoutMs?: number | undefined;
  /** Container and kubernetes substrates. */
  readonly image?: string | undefined;
  /** Ref of the migration's scratch artifact. */
  readonly scratchRef: string;
  /** Host file the job's output is appended to (the attempt log, owned by the runner). */
  readonly logPath: string;
}

export interface StepResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** null when the step succeeded. */
  readonly cause: FailureCause | null;
  /** A sentence for people, e.g. "exited with status 3" or "killed: memory above the declared peak 64Mi". */
  readonly detail: string;
}

export interface LimitsSupport {
  readonly enforced: boolean;
  /** How, or why not (e.g. "cgroup v1 at /sys/fs/cgroup/memory/ferry"). */
  readonly detail: string;
}

/** Whether jobs are confined to their tenant (own identity, own view, own environment). */
export interface IsolationSupport {
  readonly isolated: boolean;
  /** How, or why not (e.g. "mount, PID and IPC namespaces; jobs run as their tenant's uid"). */
  readonly detail: string;
}

export interface LabelledObject {
  readonly kind: ArtifactKind;
  readonly ref: string;
  readonly migrationId: string;
  readonly issue: string;
}

export interface Substrate {
  readonly kind: SubstrateKind;
  /** Prepare (folders, cgroup roots, connections). Called once before anything else. */
  init(): Promise<void>;
  /** What the node can ever provide, per dimension. */
  capacity(): Resources;
  limits(): LimitsSupport;
  /** Whether this substrate confines jobs to their tenant; recorded on each migration as `isolated`. */
  isolation(): IsolationSupport;
  /**
   * Dimensions this substrate enforces as hard limits (e.g. cpu, memory, pids). Admission refuses a
   * peak or a steady-state dimension outside this list: an admitted dimension is always enforced.
   */
  enforcedDimensions(): readonly string[];

  /** Where the tenant's data lives (folder or volume name), from the tenant's `data`. */
  tenantData(tenant: Tenant): string;
  tenantDataExists(tenant: Tenant): Promise<boolean>;
  /**
   * Hand the tenant's existing data over to its identity (`tenant.runAs`), so its jobs can write it
   * without root: called at registration and when `runAs` changes. Returns a sentence saying what was
   * done, for the registration's answer, or null when there was nothing to hand over.
   */
  adoptTenantData(tenant: Tenant): Promise<string | null>;

  scratchRef(migrationId: string): string;
  snapshotRef(migrationId: string): string;
  jobRef(spec: StepSpec): string;

  createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void>;
  /** Copy the tenant's data into a new snapshot artifact. */
  snapshot(tenant: Tenant, ref: string, meta: { migrationId: string; issue: string }): Promise<void>;
  /** Replace the tenant's data with the snapshot's content. */
  restore(tenant: Tenant, ref: string): Promise<void>;

  /** Start one step as a one-shot job with hard limits. Resolves once the job is started and findable by its ref. */
  start(spec: StepSpec, ref: string): Promise<void>;
  /**
   * Follow a job to its end: its output lines are passed to `onLine` from the step's first line,
   * also after a re-attach (a substrate may pass only the `::ferry::` lines, the only ones the
   * runner reads; the full output is in the log file), then its result. A job that cannot be found
   * resolves with cause `lost`.
   */
  watch(ref: string, onLine: (line: string) => void): Promise<StepResult>;
  /** Ask a running job to stop; its watch then resolves with cause `cancelled`. Idempotent. */
  stop(ref: string): Promise<void>;
  /** Remove an artifact. Idempotent: removing what is gone succeeds. Never touches tenant data. */
  remove(kind: ArtifactKind, ref: string): Promise<void>;
  /** Everything on the substrate that carries Ferry's labels (orphan sweep). */
  listLabelled(): Promise<LabelledObject[]>;
  /** Release connections and timers; never stops jobs. Pending `watch` promises reject promptly with FerryError FERRY_INTERNAL "substrate closed" (stop supervising; the next start re-attaches). */
  close(): Promise<void>;
}
