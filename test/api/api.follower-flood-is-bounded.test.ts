/**
 * A flood of log followers (`?follow=true`) is bounded: one token gets at most maxFollowersPerToken
 * (default 20; then 429 FERRY_TOO_MANY_FOLLOWERS), all tokens together maxFollowers (default 200;
 * then 503 FERRY_BUSY), each a problem with a sentence. All followers of one attempt share one tail.
 * Meanwhile /healthz answers and the running migration succeeds; every follower reads its whole log.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { call, removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const TOKENS = Array.from({ length: 11 }, (_, i) => `follower-token-${i}-0123456789abcdef`);

interface Follower {
  readonly status: number;
  readonly headers: Headers;
  /** Everything read, once the response has ended. */
  readonly done: Promise<string>;
  abort(): void;
}

/** GET with its own connection (no pooling), resolved once the status is known. */
function follow(url: string, token: string): Promise<Follower> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      const done = new Promise<string>((ok) => {
        res.on('data', (d: string) => (text += d));
        res.on('end', () => ok(text));
        res.on('close', () => ok(text));
        res.on('error', () => ok(text));
      });
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
      resolve({ status: res.statusCode ?? 0, headers, done, abort: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

async function problemOf(f: Follower): Promise<{ status: number; body: unknown; headers: Headers }> {
  return { status: f.status, body: JSON.parse(await f.done), headers: f.headers };
}

void describe('follower flood', () => {
  let ferry: Ferry;
  let tokensDir: string;
  let id: string;
  let logUrl: string;
  const followers: Follower[] = [];

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = join(tokensDir, 'tokens.yaml');
    writeFileSync(tokensFile, toYaml({ tokens: TOKENS.map((token, i) => ({ name: `reader-${i}`, role: 'filer', token })) }), { mode: 0o600 });
    ferry = await startFerry({ tokensFile });
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    // The job writes, then waits (at most a minute) for the test to let it finish.
    const script = 'echo started; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done; echo finished-$i';
    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'wait', run: sh(script), timeout: '5m' }]));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    id = filed.body.id;
    assert.equal((await ferry.api('POST', `/v1/migrations/${id}/approve`, {})).status, 200);
    await waitFor('the job to run', async () => {
      const m = await ferry.api('GET', `/v1/migrations/${id}`);
      return m.body.state === 'running' && m.body.attempts.length === 1;
    });
    logUrl = `${ferry.url}/v1/migrations/${id}/logs?follow=true`;
  });

  after(async () => {
    for (const f of followers) f.abort();
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('per token: the 21st follower of one token is 429, and a follower that leaves frees its place', async () => {
    for (let i = 0; i < 20; i++) {
      const f = await follow(logUrl, TOKENS[0] as string);
      assert.equal(f.status, 200);
      followers.push(f);
    }
    const refused = await follow(logUrl, TOKENS[0] as string);
    const problem = assertProblem(await problemOf(refused), 429, 'FERRY_TOO_MANY_FOLLOWERS');
    assert.match(problem.detail as string, /20/);
    // Another token is not affected.
    const other = await follow(logUrl, TOKENS[1] as string);
    assert.equal(other.status, 200);
    followers.push(other);
    // One leaves: its place is free again.
    const leaving = followers.shift() as Follower;
    leaving.abort();
    await waitFor('the place to be freed', async () => {
      const again = await follow(logUrl, TOKENS[0] as string);
      if (again.status === 200) {
        followers.push(again);
        return true;
      }
      await again.done;
      return false;
    });
  });

  void test('in total: past 200 followers it is 503 FERRY_BUSY; /healthz answers; one tail is shared', async () => {
    for (let t = 1; t <= 9; t++) {
      const have = t === 1 ? 1 : 0;
      for (let i = have; i < 20; i++) {
        const f = await follow(logUrl, TOKENS[t] as string);
        assert.equal(f.status, 200, `token ${t} follower ${i}`);
        followers.push(f);
      }
    }
    assert.equal(followers.length, 200);
    const refused = await follow(logUrl, TOKENS[10] as string);
    const problem = assertProblem(await problemOf(refused), 503, 'FERRY_BUSY');
    assert.match(problem.detail as string, /200/);
    assert.equal((await call(ferry.url, null, 'GET', '/healthz')).status, 200);
    assert.equal(ferry.service.app.logFollowers.count, 200);
    assert.equal(ferry.service.app.logFollowers.tailCount, 1, 'all followers of the attempt share one tail');
    // A one-shot read is not a follower: it is served even now.
    const once = await ferry.api('GET', `/v1/migrations/${id}/logs`);
    assert.equal(once.status, 200);
    assert.match(once.body, /started/);
  });

  void test('the migration still succeeds and every follower reads its whole log, then the places are free', async () => {
    writeFileSync(join(ferry.dataDir, 'tenants', 'shop', 'go'), '');
    await waitFor(
      'the migration to succeed',
      async () => {
        const m = await ferry.api('GET', `/v1/migrations/${id}`);
        if (m.body.state === 'held') throw new Error(`held: ${JSON.stringify(m.body.attempts)}`);
        return m.body.state === 'succeeded';
      },
      90_000,
    );
    const texts = await Promise.all(followers.map((f) => f.done));
    for (const text of texts) assert.match(text, /started\n[^]*finished-\d+\n$/);
    await waitFor('every follower to be released', () => ferry.service.app.logFollowers.count === 0);
    assert.equal(ferry.service.app.logFollowers.tailCount, 0);
  });
});
