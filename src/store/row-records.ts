/**
 * Rows to records and patches to columns: the one place that knows how a record is stored (JSON
 * in text columns, flags as 0/1, numbers that PostgreSQL's driver may hand back as strings).
 */
import type { Selectable } from 'kysely';
import type { FailureCause, MigrationRequest, MigrationState, Resources, Verdict } from '../core/types.ts';
import type {
  ArtifactRecord,
  ArtifactState,
  AttemptRecord,
  EventRecord,
  IssueRecord,
  MigrationRecord,
  NodeRecord,
  NodeState,
  TenantHome,
  TenantRecord,
} from './records.ts';
import type { AttemptsTable, Database, MigrationsTable } from './schema.ts';

/** Fields of a migration a transition may change alongside its state. */
export interface MigrationPatch {
  attempts?: number;
  verdict?: Verdict;
  next?: MigrationRecord['next'];
  failedStep?: number | null;
  heldCause?: MigrationRecord['heldCause'];
  heldDetail?: string | null;
  checkpoint?: MigrationRecord['checkpoint'];
  progress?: MigrationRecord['progress'];
  limitsEnforced?: boolean | null;
  isolated?: boolean | null;
  snapshot?: MigrationRecord['snapshot'];
}

export interface AttemptPatch {
  step?: number | null;
  jobRef?: string | null;
  endedAt?: string | null;
  exitCode?: number | null;
  signal?: string | null;
  cause?: FailureCause | null;
  detail?: string | null;
}

export function patchColumns(p: MigrationPatch): Partial<MigrationsTable> {
  const set: Partial<MigrationsTable> = {};
  if (p.attempts !== undefined) set.attempts = p.attempts;
  if (p.verdict !== undefined) set.verdict = JSON.stringify(p.verdict);
  if (p.next !== undefined) {
    set.next_from_step = p.next?.fromStep ?? null;
    set.next_checkpoint = p.next?.checkpoint ?? null;
    set.next_restore = p.next?.restore ?? null;
  }
  if (p.failedStep !== undefined) set.failed_step = p.failedStep;
  if (p.heldCause !== undefined) set.held_cause = p.heldCause;
  if (p.heldDetail !== undefined) set.held_detail = p.heldDetail;
  if (p.checkpoint !== undefined) {
    set.checkpoint = p.checkpoint?.text ?? null;
    set.checkpoint_step = p.checkpoint?.step ?? null;
  }
  if (p.progress !== undefined) {
    set.progress_done = p.progress?.done ?? null;
    set.progress_total = p.progress?.total ?? null;
  }
  if (p.isolated !== undefined) set.isolated = p.isolated === null ? null : p.isolated ? 1 : 0;
  if (p.limitsEnforced !== undefined) set.limits_enforced = p.limitsEnforced === null ? null : p.limitsEnforced ? 1 : 0;
  if (p.snapshot !== undefined) {
    set.snapshot_ref = p.snapshot?.ref ?? null;
    set.snapshot_at = p.snapshot?.at ?? null;
  }
  return set;
}

export function attemptColumns(patch: AttemptPatch): Partial<AttemptsTable> {
  const set: Partial<AttemptsTable> = {};
  if (patch.step !== undefined) set.step = patch.step;
  if (patch.jobRef !== undefined) set.job_ref = patch.jobRef;
  if (patch.endedAt !== undefined) set.ended_at = patch.endedAt;
  if (patch.exitCode !== undefined) set.exit_code = patch.exitCode;
  if (patch.signal !== undefined) set.signal = patch.signal;
  if (patch.cause !== undefined) set.cause = patch.cause;
  if (patch.detail !== undefined) set.detail = patch.detail;
  return set;
}

export function migrationRecord(r: Selectable<MigrationsTable>): MigrationRecord {
  return {
    id: r.id,
    issue: r.issue,
    tenant: r.tenant,
    state: r.state as MigrationState,
    request: JSON.parse(r.request) as MigrationRequest,
    peak: JSON.parse(r.peak) as Resources,
    attempts: Number(r.attempts),
    verdict: JSON.parse(r.verdict) as Verdict,
    filedBy: r.filed_by,
    next:
      r.next_from_step === null
        ? null
        : { fromStep: Number(r.next_from_step), checkpoint: r.next_checkpoint, restore: r.next_restore as 'snapshot' | 'wipe-step' | null },
    failedStep: r.failed_step === null ? null : Number(r.failed_step),
    heldCause: r.held_cause as MigrationRecord['heldCause'],
    heldDetail: r.held_detail,
    checkpoint: r.checkpoint === null ? null : { step: Number(r.checkpoint_step), text: r.checkpoint },
    progress: r.progress_done === null ? null : { done: Number(r.progress_done), total: Number(r.progress_total) },
    limitsEnforced: r.limits_enforced === null ? null : Number(r.limits_enforced) === 1,
    isolated: r.isolated === null ? null : Number(r.isolated) === 1,
    snapshot: r.snapshot_ref === null ? null : { ref: r.snapshot_ref, at: r.snapshot_at ?? '' },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function attemptRecord(r: Selectable<AttemptsTable>): AttemptRecord {
  return {
    migrationId: r.migration_id,
    number: Number(r.number),
    fromStep: Number(r.from_step),
    step: r.step === null ? null : Number(r.step),
    jobRef: r.job_ref,
    logRef: r.log_ref,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    signal: r.signal,
    cause: r.cause as FailureCause | null,
    detail: r.detail,
    node: r.node,
    takenOverAt: r.taken_over_at,
    lateOutcomeAt: r.late_outcome_at,
  };
}

export function eventRecord(r: Selectable<Database['events']>): EventRecord {
  return {
    id: Number(r.id),
    migrationId: r.migration_id,
    at: r.at,
    actor: r.actor,
    kind: r.kind,
    from: r.from_state as MigrationState | null,
    to: r.to_state as MigrationState | null,
    reason: r.reason,
    detail: r.detail === null ? null : JSON.parse(r.detail),
  };
}

export function tenantRecord(r: Selectable<Database['tenants']>): TenantRecord {
  return {
    id: r.id,
    steadyState: JSON.parse(r.steady_state) as Resources,
    data: r.data,
    runAs: r.run_as_uid === null ? null : { uid: Number(r.run_as_uid), gid: Number(r.run_as_gid ?? r.run_as_uid) },
    allowRoot: Number(r.allow_root) === 1,
    node: r.node,
    placement: r.placement,
    adoptedAt: r.adopted_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function issueRecord(r: Selectable<Database['issues']>): IssueRecord {
  return { ref: r.ref, closedAt: r.closed_at, closedBy: r.closed_by, teardownDoneAt: r.teardown_done_at };
}

export function artifactRecord(r: Selectable<Database['artifacts']>): ArtifactRecord {
  return {
    id: Number(r.id),
    migrationId: r.migration_id,
    issue: r.issue,
    kind: r.kind,
    ref: r.ref,
    state: r.state as ArtifactState,
    recordedAt: r.recorded_at,
    createdAt: r.created_at,
    removedAt: r.removed_at,
    node: r.node,
  };
}

export function nodeRecord(r: Selectable<Database['nodes']>): NodeRecord {
  return {
    name: r.name,
    url: r.url,
    substrate: r.substrate,
    capacity: JSON.parse(r.capacity) as Resources,
    enforced: r.enforced === null ? null : (JSON.parse(r.enforced) as string[]),
    tenantHome: JSON.parse(r.tenant_home) as TenantHome,
    state: r.state as NodeState,
    epoch: Number(r.epoch),
    startedAt: r.started_at,
    lastSeenAt: new Date(Number(r.last_seen_ms)).toISOString(),
    lostAt: r.lost_at,
  };
}
