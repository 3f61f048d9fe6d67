import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, FerryError } from '../../src/core/errors.ts';
import type { TrackerKind } from '../../src/core/issue-ref.ts';
import { createTrackerClient, TrackerError, type TrackerClient } from '../../src/tracker/clients.ts';
import { startRecorder, type Recorder } from './helpers.ts';

interface Case {
  readonly tracker: TrackerKind;
  readonly token: string;
  readonly issue: string;
  readonly commentId: string;
  readonly create: { readonly method: string; readonly path: string };
  readonly update: { readonly method: string; readonly path: string };
  readonly auth: (headers: Recorder['requests'][number]['headers']) => string | undefined;
  readonly authValue: string;
  /** GitHub's client takes the API root itself; the others take the instance root. */
  readonly base: (root: string) => string;
}

const CASES: readonly Case[] = [
  {
    tracker: 'github',
    token: 'ghs_testtoken',
    issue: 'github:acme/platform#742',
    commentId: '1001',
    create: { method: 'POST', path: '/repos/acme/platform/issues/742/comments' },
    update: { method: 'PATCH', path: '/repos/acme/platform/issues/comments/1001' },
    auth: (h) => h.authorization,
    authValue: 'token ghs_testtoken',
    base: (root) => root,
  },
  {
    tracker: 'gitea',
    token: 'gt_testtoken',
    issue: 'gitea:acme/platform#12',
    commentId: '4411',
    create: { method: 'POST', path: '/api/v1/repos/acme/platform/issues/12/comments' },
    update: { method: 'PATCH', path: '/api/v1/repos/acme/platform/issues/comments/4411' },
    auth: (h) => h.authorization,
    authValue: 'token gt_testtoken',
    base: (root) => `${root}/`,
  },
  {
    tracker: 'gitlab',
    token: 'glpat-testtoken',
    issue: 'gitlab:group/sub/repo#5',
    commentId: '1241',
    create: { method: 'POST', path: '/api/v4/projects/group%2Fsub%2Frepo/issues/5/notes' },
    update: { method: 'PUT', path: '/api/v4/projects/group%2Fsub%2Frepo/issues/5/notes/1241' },
    auth: (h) => h['private-token'] as string | undefined,
    authValue: 'glpat-testtoken',
    base: (root) => root,
  },
];

async function withServer(c: Case, run: (client: TrackerClient, server: Recorder) => Promise<void>): Promise<void> {
  const server = await startRecorder((req) =>
    req.method === 'POST' ? { status: 201, body: { id: Number(c.commentId), body: 'x' } } : { status: 200, body: { id: Number(c.commentId) } },
  );
  try {
    await run(createTrackerClient(c.tracker, { token: c.token, baseUrl: c.base(server.baseUrl), timeoutMs: 5000 }), server);
  } finally {
    await server.close();
  }
}

async function rejectsWith(
  promise: Promise<unknown>,
  expected: Partial<Pick<TrackerError, 'retryable' | 'trackerStatus' | 'code' | 'retryAfterMs'>>,
): Promise<TrackerError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TrackerError, `expected a TrackerError, got ${String(caught)}`);
  // One catalogue: a tracker failure is a FerryError whose code and status come from it.
  assert.ok(caught instanceof FerryError);
  assert.equal(caught.status, ERRORS[caught.code]);
  assert.equal(caught.code, caught.retryable ? 'FERRY_TRACKER_RETRYABLE' : 'FERRY_TRACKER_PERMANENT');
  for (const [key, value] of Object.entries(expected)) assert.equal(caught[key as keyof TrackerError], value, key);
  return caught;
}

for (const c of CASES) {
  void test(`${c.tracker}: createComment posts the body to the issue with the token and returns the comment id`, async () => {
    await withServer(c, async (client, server) => {
      const created = await client.createComment(c.issue, '<!-- ferry:status:m-lx3k9a-00000001 -->\nhello | world');
      assert.deepEqual(created, { id: c.commentId });
      assert.equal(server.requests.length, 1);
      const [req] = server.requests;
      assert.equal(req?.method, c.create.method);
      assert.equal(req?.url, c.create.path);
      assert.equal(c.auth(req?.headers ?? {}), c.authValue);
      assert.deepEqual(JSON.parse(req?.body ?? ''), { body: '<!-- ferry:status:m-lx3k9a-00000001 -->\nhello | world' });
    });
  });

  void test(`${c.tracker}: updateComment replaces the comment's body in place`, async () => {
    await withServer(c, async (client, server) => {
      await client.updateComment(c.issue, c.commentId, 'updated');
      const [req] = server.requests;
      assert.equal(req?.method, c.update.method);
      assert.equal(req?.url, c.update.path);
      assert.equal(c.auth(req?.headers ?? {}), c.authValue);
      assert.deepEqual(JSON.parse(req?.body ?? ''), { body: 'updated' });
    });
  });

  void test(`${c.tracker}: a 500 is retryable and the client does not retry on its own; the next call succeeds`, async () => {
    await withServer(c, async (client, server) => {
      server.queue.push({ status: 500, body: { message: 'internal error' } });
      const err = await rejectsWith(client.createComment(c.issue, 'x'), { retryable: true, trackerStatus: 500, code: 'FERRY_TRACKER_RETRYABLE' });
      assert.match(err.message, /500/);
      assert.equal(server.requests.length, 1);
      assert.deepEqual(await client.createComment(c.issue, 'x'), { id: c.commentId });
      assert.equal(server.requests.length, 2);
    });
  });

  void test(`${c.tracker}: a 429 is retryable and carries Retry-After`, async () => {
    await withServer(c, async (client, server) => {
      server.queue.push({ status: 429, body: { message: 'slow down' }, headers: { 'retry-after': '7' } });
      await rejectsWith(client.updateComment(c.issue, c.commentId, 'x'), { retryable: true, trackerStatus: 429, retryAfterMs: 7000 });
    });
  });

  void test(`${c.tracker}: a 404 or 422 is permanent, with the status`, async () => {
    await withServer(c, async (client, server) => {
      server.queue.push({ status: 404, body: { message: 'Not Found' } }, { status: 422, body: { message: 'Validation Failed' } });
      await rejectsWith(client.createComment(c.issue, 'x'), { retryable: false, trackerStatus: 404, code: 'FERRY_TRACKER_PERMANENT' });
      await rejectsWith(client.updateComment(c.issue, c.commentId, 'x'), { retryable: false, trackerStatus: 422 });
    });
  });

  void test(`${c.tracker}: a network error is retryable, with no status`, async () => {
    const server = await startRecorder(() => ({ status: 200 }));
    const base = c.base(server.baseUrl);
    await server.close();
    const client = createTrackerClient(c.tracker, { token: c.token, baseUrl: base, timeoutMs: 5000 });
    await rejectsWith(client.createComment(c.issue, 'x'), { retryable: true, trackerStatus: null });
  });

  void test(`${c.tracker}: a ref of another tracker is refused before any request`, async () => {
    await withServer(c, async (client, server) => {
      const other = c.tracker === 'github' ? 'gitlab:group/repo#1' : 'github:acme/platform#1';
      await rejectsWith(client.createComment(other, 'x'), { retryable: false, trackerStatus: null });
      assert.equal(server.requests.length, 0);
    });
  });
}

void test("github: a 403 that is GitHub's rate limit is retryable; any other 403 is permanent", async () => {
  const c = CASES[0] as Case;
  await withServer(c, async (client, server) => {
    server.queue.push({ status: 403, body: { message: 'API rate limit exceeded' }, headers: { 'x-ratelimit-remaining': '0' } });
    await rejectsWith(client.createComment(c.issue, 'x'), { retryable: true, trackerStatus: 403 });
    server.queue.push({ status: 403, body: { message: 'Resource not accessible by integration' }, headers: { 'x-ratelimit-remaining': '4999' } });
    await rejectsWith(client.createComment(c.issue, 'x'), { retryable: false, trackerStatus: 403 });
  });
});
