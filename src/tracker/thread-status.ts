/**
 * What a migration's status comment shows, read from the store (and, when held, the tail of the
 * failed attempt's log file). Always rendered from the current record, never from the transition
 * that triggered it, so late or reordered refreshes cannot show an older state.
 */
import { open } from 'node:fs/promises';
import { parseIssueRef } from '../core/issue-ref.ts';
import { heldFactsOf } from '../core/recovery.ts';
import type { FailureCause } from '../core/types.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';
import type { HeldView, StatusView, TenantHolderView } from './comments.ts';
import { threadWebUrl, type TrackerSettings } from './tracker-config.ts';
import type { TrackerKind } from '../core/issue-ref.ts';

/** Bytes read from the end of a log file for the tail (the renderer keeps the last 40 lines). */
const TAIL_BYTES = 64 * 1024;

export async function statusView(store: Store, m: MigrationRecord, trackers: Readonly<Record<TrackerKind, TrackerSettings>>): Promise<StatusView> {
  const attempt = m.attempts > 0 ? await store.getAttempt(m.id, m.attempts) : null;
  let held: HeldView | null = null;
  if (m.state === 'held') {
    // A hold by the gate (a recovery action refused at start) keeps the last attempt's failure as its cause.
    const cause: FailureCause = m.heldCause !== null && m.heldCause !== 'gate' ? m.heldCause : (attempt?.cause ?? 'lost');
    held = {
      cause,
      detail: m.heldDetail,
      facts: heldFactsOf(m, attempt?.step ?? null),
      logTail: attempt === null ? '' : await readTail(attempt.logRef),
    };
  }
  let waitingFor: TenantHolderView | null = null;
  if (m.state === 'queued') {
    const holder = (await store.listHolders()).find((h) => h.tenant === m.tenant && h.id !== m.id);
    if (holder !== undefined) {
      const other = await store.getMigration(holder.id);
      if (other !== null) waitingFor = { migrationId: other.id, issue: other.issue, url: await issueUrl(store, other.issue, trackers), state: other.state };
    }
  }
  const gateRefused = m.state === 'rejected' || (m.state === 'held' && m.heldCause === 'gate');
  return {
    migrationId: m.id,
    issue: m.issue,
    tenant: m.tenant,
    state: m.state,
    attempt: m.attempts,
    steps: m.request.steps.map((s) => s.name),
    currentStep: m.state === 'running' ? (attempt?.step ?? null) : null,
    progress: m.state === 'running' ? m.progress : null,
    held,
    waitingFor,
    gateReasons: gateRefused ? m.verdict.reasons : null,
    // The job may have printed a secret value: the comment masks it wherever job output is quoted.
    secretValues: (m.request.secretEnv ?? []).map((name) => m.request.env[name] ?? ''),
    updatedAt: m.updatedAt,
  };
}

/** The thread's web address: as the tracker last sent it, else derived from the configuration. */
export async function issueUrl(store: Store, issue: string, trackers: Readonly<Record<TrackerKind, TrackerSettings>>): Promise<string> {
  const known = await store.threads.threadUrl(issue);
  if (known !== null) return known;
  const ref = parseIssueRef(issue);
  return threadWebUrl(trackers[ref.tracker], ref.repo, ref.number) ?? issue;
}

/** The last TAIL_BYTES of a log file, from a line start; '' when it does not exist. */
export async function readTail(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const text = buf.toString('utf8');
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
  } finally {
    await fh.close();
  }
}
