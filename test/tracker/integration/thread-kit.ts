// A tracker played by a local HTTP server (REST API for comments), signed deliveries to a real
// Ferry, and helpers to read the thread as a person on the tracker would see it.
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import { removeDir, startFerry, waitFor, type Ferry } from '../../support/harness.ts';
import type { TrackerKind } from '../../../src/core/issue-ref.ts';
import type { RawTrackerOptions } from '../../../src/tracker/tracker-config.ts';
import { rawDatabaseForTests } from '../../../src/store/raw-database-for-tests.ts';
import { body as rawBody, giteaSignature, githubSignature, startRecorder, type RecordedRequest, type Recorder } from '../helpers.ts';

export const SECRET = 'hook-secret-0123456789';
export const TRACKER_KINDS: readonly TrackerKind[] = ['github', 'gitea', 'gitlab'];

export interface FakeComment {
  readonly id: number;
  /** The body as posted, then every edit, in order. */
  readonly bodies: string[];
}

export interface FakeTracker {
  readonly kind: TrackerKind;
  readonly recorder: Recorder;
  /** What Ferry's config calls apiUrl for this tracker. */
  readonly apiUrl: string;
  /** Comments that exist on the tracker (accepted creates), in creation order. */
  readonly comments: FakeComment[];
  /** Requests the tracker accepted (2xx). */
  readonly accepted: RecordedRequest[];
  close(): Promise<void>;
}

const CREATE = /\/(comments|notes)$/;
const EDIT = /\/(comments|notes)\/(\d+)$/;

export async function startFakeTracker(kind: TrackerKind): Promise<FakeTracker> {
  const comments: FakeComment[] = [];
  const accepted: RecordedRequest[] = [];
  let next = 1000;
  const recorder = await startRecorder((request) => {
    const text = (JSON.parse(request.body || '{}') as { body?: string }).body ?? '';
    if (request.method === 'POST' && CREATE.test(request.url)) {
      const comment = { id: next++, bodies: [text] };
      comments.push(comment);
      accepted.push(request);
      return { status: 201, body: { id: comment.id, body: text } };
    }
    const edit = EDIT.exec(request.url);
    if ((request.method === 'PATCH' || request.method === 'PUT') && edit) {
      const comment = comments.find((c) => c.id === Number(edit[2]));
      if (comment === undefined) return { status: 404, body: { message: 'Not Found' } };
      comment.bodies.push(text);
      accepted.push(request);
      return { status: 200, body: { id: comment.id, body: text } };
    }
    return { status: 404, body: { message: 'Not Found' } };
  });
  return { kind, recorder, apiUrl: recorder.baseUrl, comments, accepted, close: () => recorder.close() };
}

/** The current body of each comment (what the thread shows). */
export function current(tracker: FakeTracker): string[] {
  return tracker.comments.map((c) => c.bodies.at(-1) ?? '');
}

export function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

export interface ThreadRef {
  readonly kind: TrackerKind;
  /** owner/repo (GitLab: group/sub/repo). */
  readonly repo: string;
  readonly number: number;
}

export function refOf(thread: ThreadRef): string {
  return `${thread.kind}:${thread.repo}#${thread.number}`;
}

export function trackerSettings(tracker: FakeTracker, extra: RawTrackerOptions = {}): RawTrackerOptions {
  return {
    webhookSecret: SECRET,
    apiUrl: tracker.apiUrl,
    token: 'bot-token',
    botUser: 'ferry-bot',
    filers: ['alice'],
    operators: ['olga'],
    admins: ['root'],
    ...extra,
  };
}

/** A Ferry whose `kind` tracker points at the fake tracker; outbox retries fast unless told. */
export async function startThreadFerry(
  tracker: FakeTracker,
  options: { dataDir?: string; retryBaseMs?: number; extra?: RawTrackerOptions; bodyLimit?: number } = {},
): Promise<Ferry> {
  return startFerry({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    trackers: { [tracker.kind]: trackerSettings(tracker, options.extra) },
    outbox: { retryBaseMs: options.retryBaseMs ?? 50, retryMaxMs: 1000 },
  });
}

/**
 * A fake `kind` tracker and a Ferry pointed at it, with the tenant `shop` registered; both are
 * stopped and the data folder removed when the test ends.
 */
export async function startThreadWorld(
  t: TestContext,
  kind: TrackerKind,
  options: Parameters<typeof startThreadFerry>[1] = {},
): Promise<{ tracker: FakeTracker; ferry: Ferry }> {
  const tracker = await startFakeTracker(kind);
  const ferry = await startThreadFerry(tracker, options);
  t.after(async () => {
    await ferry.stop();
    await tracker.close();
    removeDir(ferry.dataDir);
  });
  await registerTenant(ferry);
  return { tracker, ferry };
}

export async function registerTenant(ferry: Ferry, id = 'shop'): Promise<void> {
  const r = await ferry.api('PUT', `/v1/tenants/${id}`, { steadyState: { cpu: '1', memory: '1Gi' } });
  if (r.status !== 201 && r.status !== 200) throw new Error(`tenant: ${r.status} ${JSON.stringify(r.body)}`);
}

export function requestBody(steps: Array<{ name: string; run: string[] }>, tenant = 'shop', peak = { cpu: '500m', memory: '256Mi' }): string {
  const lines = ['We need the shop data moved.', '', '```ferry', `tenant: ${tenant}`, `peak: { cpu: ${peak.cpu}, memory: ${peak.memory} }`, 'steps:'];
  for (const step of steps) lines.push(`  - name: ${step.name}`, `    run: ${JSON.stringify(step.run)}`);
  lines.push('```', '');
  return lines.join('\n');
}

// ---------------------------------------------------------------- deliveries

export interface Delivery {
  readonly event: string;
  readonly payload: Record<string, unknown>;
}

function webIssue(thread: ThreadRef): string {
  return thread.kind === 'gitlab'
    ? `https://gitlab.example/${thread.repo}/-/issues/${thread.number}`
    : `https://${thread.kind}.example/${thread.repo}/issues/${thread.number}`;
}

const GITLAB_ACTIONS = { opened: 'open', edited: 'update', closed: 'close', reopened: 'reopen' } as const;

export function issueDelivery(thread: ThreadRef, action: 'opened' | 'edited' | 'closed' | 'reopened', description: string, author: string): Delivery {
  if (thread.kind === 'gitlab') {
    return {
      event: 'Issue Hook',
      payload: {
        object_kind: 'issue',
        event_type: 'issue',
        user: { id: 1, name: author, username: author },
        project: { id: 42, path_with_namespace: thread.repo, web_url: `https://gitlab.example/${thread.repo}` },
        object_attributes: {
          iid: thread.number,
          action: GITLAB_ACTIONS[action],
          description,
          url: webIssue(thread),
          state: action === 'closed' ? 'closed' : 'opened',
        },
      },
    };
  }
  return {
    event: 'issues',
    payload: {
      action,
      issue: {
        number: thread.number,
        title: 'Move the shop data',
        body: description,
        html_url: webIssue(thread),
        state: action === 'closed' ? 'closed' : 'open',
      },
      repository: { full_name: thread.repo },
      sender: { login: author },
    },
  };
}

let commentIds = 5000;

export function commentDelivery(thread: ThreadRef, text: string, author: string): Delivery {
  const id = commentIds++;
  if (thread.kind === 'gitlab') {
    return {
      event: 'Note Hook',
      payload: {
        object_kind: 'note',
        event_type: 'note',
        user: { id: 7, name: author, username: author },
        project: { id: 42, path_with_namespace: thread.repo },
        object_attributes: { id, note: text, noteable_type: 'Issue', action: 'create', system: false, url: `${webIssue(thread)}#note_${id}` },
        issue: { iid: thread.number },
      },
    };
  }
  return {
    event: 'issue_comment',
    payload: {
      action: 'created',
      issue: { number: thread.number, body: '', html_url: webIssue(thread) },
      comment: { id, body: text, html_url: `${webIssue(thread)}#issuecomment-${id}`, user: { login: author } },
      repository: { full_name: thread.repo },
      ...(thread.kind === 'gitea' ? { is_pull: false } : {}),
    },
  };
}

/** Signed headers for a delivery of `kind`. */
export async function signedHeaders(kind: TrackerKind, event: string, raw: Buffer, deliveryId: string, secret = SECRET): Promise<Record<string, string>> {
  switch (kind) {
    case 'github':
      return { 'x-github-event': event, 'x-github-delivery': deliveryId, 'x-hub-signature-256': await githubSignature(secret, raw) };
    case 'gitea':
      return { 'x-gitea-event': event, 'x-gitea-delivery': deliveryId, 'x-gitea-signature': giteaSignature(secret, raw) };
    case 'gitlab':
      return { 'x-gitlab-event': event, 'x-gitlab-event-uuid': deliveryId, 'x-gitlab-token': secret };
  }
}

export interface Sent {
  readonly status: number;
  readonly body: any;
  readonly deliveryId: string;
}

/** POST a signed delivery to Ferry. */
export async function deliver(
  ferry: Ferry,
  kind: TrackerKind,
  delivery: Delivery,
  options: { deliveryId?: string; headers?: Record<string, string>; raw?: Buffer } = {},
): Promise<Sent> {
  const deliveryId = options.deliveryId ?? randomUUID();
  const raw = options.raw ?? rawBody(delivery.payload);
  const headers = { 'content-type': 'application/json', ...(await signedHeaders(kind, delivery.event, raw, deliveryId)), ...options.headers };
  const res = await fetch(`${ferry.url}/v1/hooks/${kind}`, { method: 'POST', headers, body: new Uint8Array(raw) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed, deliveryId };
}

export async function deliverOk(ferry: Ferry, kind: TrackerKind, delivery: Delivery, options: { deliveryId?: string } = {}): Promise<Sent> {
  const sent = await deliver(ferry, kind, delivery, options);
  if (sent.status !== 200) throw new Error(`delivery refused: ${sent.status} ${JSON.stringify(sent.body)}`);
  return sent;
}

/** Wait until the outbox has nothing pending (everything accepted or given up). */
export async function outboxDrained(ferry: Ferry): Promise<void> {
  await waitFor('the outbox to drain', async () => (await outboxRows(ferry, { state: 'pending' })).length === 0);
}

/** The outbox table as it is, oldest first (the Store exposes only what the sender needs). */
export async function outboxRows(ferry: Ferry, filter: { issue?: string; state?: 'pending' | 'sent' | 'failed' } = {}) {
  let q = rawDatabaseForTests(ferry.service.store).selectFrom('tracker_outbox').selectAll();
  if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
  if (filter.state !== undefined) q = q.where('state', '=', filter.state);
  return q.orderBy('id').execute();
}

/** Everything Ferry keeps about migrations, as the API shows it: compared before and after refused input. */
export async function snapshotState(ferry: Ferry): Promise<unknown> {
  const list = await ferry.api('GET', '/v1/migrations');
  const details = [];
  for (const m of list.body as Array<{ id: string }>) details.push((await ferry.api('GET', `/v1/migrations/${m.id}`)).body);
  const outbox = await outboxRows(ferry);
  const deliveries = await rawDatabaseForTests(ferry.service.store).selectFrom('tracker_deliveries').selectAll().execute();
  return { list: list.body, details, outbox: outbox.length, deliveries: deliveries.length };
}

export async function migrationsOf(ferry: Ferry, issue: string): Promise<Array<{ id: string; state: string }>> {
  const r = await ferry.api('GET', `/v1/migrations?issue=${encodeURIComponent(issue)}`);
  return r.body as Array<{ id: string; state: string }>;
}

export async function waitForState(ferry: Ferry, id: string, state: string, ms = 20_000): Promise<void> {
  await waitFor(`migration ${id} to be ${state}`, async () => (await ferry.api('GET', `/v1/migrations/${id}`)).body.state === state, ms);
}

/** Comments whose first line is `marker`, current bodies. */
export function withMarker(tracker: FakeTracker, marker: string): FakeComment[] {
  return tracker.comments.filter((c) => firstLine(c.bodies[0] ?? '') === marker);
}
