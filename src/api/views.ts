/** What the API shows of a migration: the record plus its attempts, events and artifacts. */
import { describeActions } from '../core/recovery.ts';
import type { ArtifactRecord, AttemptRecord, EventRecord, MigrationRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';

export function migrationSummary(m: MigrationRecord) {
  return {
    id: m.id,
    issue: m.issue,
    tenant: m.tenant,
    state: m.state,
    attempts: m.attempts,
    peak: m.peak,
    heldCause: m.heldCause,
    progress: m.progress,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  };
}

export async function migrationDetail(store: Store, m: MigrationRecord) {
  const [attempts, events, artifacts] = await Promise.all([store.listAttempts(m.id), store.listEvents(m.id), store.listArtifacts({ migrationId: m.id })]);
  return {
    ...migrationSummary(m),
    attempts: attempts.map(attemptView),
    request: m.request,
    verdict: m.verdict,
    filedBy: m.filedBy,
    failedStep: m.failedStep,
    heldDetail: m.heldDetail,
    checkpoint: m.checkpoint,
    limitsEnforced: m.limitsEnforced,
    snapshot: m.snapshot,
    next: m.next,
    actions:
      m.state === 'held'
        ? describeActions({
            attempts: m.attempts,
            failedStep: m.failedStep ?? 0,
            checkpoint: m.checkpoint && m.checkpoint.step === m.failedStep ? m.checkpoint.text : null,
            snapshotAt: m.snapshot?.at ?? null,
            hasWipeStep: m.request.wipe !== undefined,
            stepNames: m.request.steps.map((s) => s.name),
          })
        : null,
    events: events.map(eventView),
    artifacts: artifacts.map(artifactView),
  };
}

function attemptView(a: AttemptRecord) {
  return {
    number: a.number,
    fromStep: a.fromStep,
    step: a.step,
    exitCode: a.exitCode,
    signal: a.signal,
    cause: a.cause,
    detail: a.detail,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
  };
}

function eventView(e: EventRecord) {
  return { at: e.at, actor: e.actor, kind: e.kind, from: e.from, to: e.to, reason: e.reason, detail: e.detail };
}

function artifactView(a: ArtifactRecord) {
  return { kind: a.kind, ref: a.ref, state: a.state, recordedAt: a.recordedAt, createdAt: a.createdAt, removedAt: a.removedAt };
}
