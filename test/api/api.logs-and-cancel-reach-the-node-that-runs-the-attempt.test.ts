/**
 * Any node answers: two nodes (`a`, `b`) on one PostgreSQL database, tenants living on `b`. Asked of
 * `a`, an attempt's log (whole, `?tail=`, `?follow=true`) and the cancel of a running migration are
 * forwarded to `b`, which runs the attempt, and its answer comes back (`X-Ferry-Answered-By: b`). A
 * request already forwarded once (`X-Ferry-Forwarded-By`) is answered where it lands. A migration
 * that is not running is cancelled by whichever node is asked. When `b` is away (a clean stop: `left`;
 * an address that refuses connections), `a` answers 503 FERRY_NODE_UNREACHABLE with a sentence naming
 * `b`, its state and when it was last seen; a console session (known to one node only) is not carried
 * to another node, and is told where to go. Once `b` is back, `a` serves its log again.
 * Skips (loudly) without PostgreSQL; fails under CI=true.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { closedPort } from '../cli/cli-process.ts';
import { call, removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';
import { assertProblem } from './problem-assertions.ts';

/** Prints, then waits (at most two minutes) for the test to let it finish. */
const WAIT =
  'echo started-$FERRY_MIGRATION_ID; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.1; done; echo finished-$i';

/** A streamed GET on its own connection, resolved once the status is known; `text()` is what was read so far. */
function stream(
  url: string,
  token: string,
): Promise<{ status: number; headers: IncomingMessage['headers']; text: () => string; done: Promise<string>; abort: () => void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      const done = new Promise<string>((ok) => {
        res.on('data', (d: string) => (text += d));
        res.on('end', () => ok(text));
        res.on('close', () => ok(text));
        res.on('error', () => ok(text));
      });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text: () => text, done, abort: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

void test('logs and the cancel of a running job reach the node that runs the attempt, or say why they cannot', async (t) => {
  if (!(await requirePostgres(t))) return;
  const db = new TestDatabase();
  await db.ensure();
  const capacity = { cpu: '4', memory: '4Gi' };
  const a = await startFerry({ databaseUrl: db.url, node: 'a', capacity });
  let b: Ferry = await startFerry({ databaseUrl: db.url, node: 'b', capacity, token: a.token });
  const bDir = b.dataDir;
  const go = (tenant: string) => writeFileSync(join(bDir, 'tenants', tenant, 'go'), '');
  t.after(async () => {
    for (const tenant of ['shop', 'blog']) {
      try {
        go(tenant);
      } catch {
        // not created
      }
    }
    await b.service.runner.idle();
    await b.stop();
    await a.stop();
    await db.drop();
    removeDir(a.dataDir);
    removeDir(bDir);
  });

  // Tenants registered through b live on b: their attempts start there.
  for (const tenant of ['shop', 'blog']) {
    const put = await b.api('PUT', `/v1/tenants/${tenant}`, { steadyState: { cpu: '1', memory: '1Gi' } });
    assert.equal(put.status, 201, JSON.stringify(put.body));
  }
  const start = async (tenant: string, issue: number): Promise<string> => {
    const filed = await a.api(
      'POST',
      '/v1/migrations',
      request(tenant, [{ name: 'wait', run: sh(WAIT), timeout: '5m' }], { issue: `github:acme/platform#${issue}` }),
    );
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    assert.equal((await a.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
    await waitFor(`${filed.body.id} to run on b and print`, async () => {
      const m = await a.api('GET', `/v1/migrations/${filed.body.id}`);
      if (m.body.state !== 'running') return false;
      const log = await b.api('GET', `/v1/migrations/${filed.body.id}/logs`);
      return typeof log.body === 'string' && log.body.includes('started-');
    });
    return filed.body.id as string;
  };

  const shop = await start('shop', 1);
  const blog = await start('blog', 2);
  const shopView = await a.api('GET', `/v1/migrations/${shop}`);
  assert.equal(shopView.body.node, 'b', "the migration names its tenant's node");
  assert.equal(shopView.body.attempts[0].node, 'b', 'the attempt names the node that runs it');

  await t.test('a log asked of a is served by b, whole and tailed', async () => {
    const whole = await a.api('GET', `/v1/migrations/${shop}/logs`);
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    assert.equal(whole.headers.get('x-ferry-answered-by'), 'b');
    assert.match(whole.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(whole.body, (await b.api('GET', `/v1/migrations/${shop}/logs`)).body, 'the same text as b serves');
    assert.equal((await b.api('GET', `/v1/migrations/${shop}/logs`)).headers.get('x-ferry-answered-by'), null, 'b answers its own');
    const tail = await a.api('GET', `/v1/migrations/${shop}/logs?tail=5`);
    assert.equal(tail.status, 200);
    assert.notEqual(tail.headers.get('x-ferry-log-skipped'), null, 'the tail header comes back too');
    const download = await a.api('GET', `/v1/migrations/${shop}/logs?download=true`);
    assert.match(download.headers.get('content-disposition') ?? '', /attachment/);
  });

  await t.test('a request forwarded once is answered where it lands, never forwarded again', async () => {
    const res = await a.api('GET', `/v1/migrations/${shop}/logs`, undefined, { 'x-ferry-forwarded-by': 'b' });
    assert.equal(res.headers.get('x-ferry-answered-by'), null, JSON.stringify(res.body));
  });

  await t.test('a running job is cancelled through a by b; a migration that is not running is cancelled by a itself', async () => {
    const cancelled = await a.api('POST', `/v1/migrations/${blog}/cancel`, { reason: 'not needed' });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(cancelled.headers.get('x-ferry-answered-by'), 'b');
    assert.equal(cancelled.body.state, 'cancelled');
    const events = (await a.api('GET', `/v1/migrations/${blog}`)).body.events as Array<{ kind: string; reason: string | null }>;
    assert.ok(
      events.some((e) => e.reason === 'not needed'),
      JSON.stringify(events),
    );

    const filed = await a.api('POST', '/v1/migrations', request('blog', [{ name: 'noop', run: sh('true') }], { issue: 'github:acme/platform#3' }));
    const local = await a.api('POST', `/v1/migrations/${filed.body.id}/cancel`, {});
    assert.equal(local.status, 200, JSON.stringify(local.body));
    assert.equal(local.headers.get('x-ferry-answered-by'), null, 'a filed migration is cancelled where asked');
    assert.equal(local.body.state, 'cancelled');
  });

  await t.test('a followed log asked of a streams from b until the attempt ends', async () => {
    const follower = await stream(`${a.url}/v1/migrations/${shop}/logs?follow=true`, a.token);
    assert.equal(follower.status, 200);
    assert.equal(follower.headers['x-ferry-answered-by'], 'b');
    await waitFor('the follower to read what the job printed', () => follower.text().includes(`started-${shop}`));
    go('shop');
    const text = await follower.done;
    assert.match(text, /finished-\d+/, text);
    await waitFor(`${shop} to succeed`, async () => (await a.api('GET', `/v1/migrations/${shop}`)).body.state === 'succeeded');
  });

  await t.test('with b away, a says where the log and the job are, and what to do', async () => {
    // A third migration of shop, running on b when b stops cleanly: its job lives on.
    rmSync(join(bDir, 'tenants', 'shop', 'go'), { force: true });
    const held = await start('shop', 4);
    await b.stop();

    const log = assertProblem(await a.api('GET', `/v1/migrations/${held}/logs`), 503, 'FERRY_NODE_UNREACHABLE');
    assert.match(log.detail as string, /log of attempt 1 of \S+ is on node b, which left the cluster/);
    assert.match(log.detail as string, /last seen \d{4}-\d\d-\d\dT/);
    assert.match(log.detail as string, /served again when b is back/);
    assert.equal(log.node, 'b');
    assert.equal(log.state, 'left');
    const cancel = assertProblem(await a.api('POST', `/v1/migrations/${held}/cancel`, {}), 503, 'FERRY_NODE_UNREACHABLE');
    assert.match(cancel.detail as string, /runs on node b, which left the cluster.*only b can stop its job/);
    assert.equal((await a.api('GET', `/v1/migrations/${held}`)).body.state, 'running', 'nothing changed');

    // An address where nothing listens, as if b were up but cut off (set in the database by hand).
    await db.query(`UPDATE nodes SET state = 'up', url = $1 WHERE name = 'b'`, [`http://127.0.0.1:${await closedPort()}`]);
    const refused = assertProblem(await a.api('GET', `/v1/migrations/${held}/logs?follow=true`), 503, 'FERRY_NODE_UNREACHABLE');
    assert.match(refused.detail as string, /on node b, which is up \(last seen [^)]+\) but cannot be reached: .* does not answer \(ECONNREFUSED\)/);

    // A console session lives on a alone: it is told to open b's console rather than carried there.
    const session = await call(a.url, null, 'POST', '/v1/session', { token: a.token });
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const viaCookie = assertProblem(await call(a.url, null, 'GET', `/v1/migrations/${held}/logs`, undefined, { cookie }), 503, 'FERRY_NODE_UNREACHABLE');
    assert.match(viaCookie.detail as string, /console session is known only to node a: open the console of b at http:\/\/127\.0\.0\.1:\d+\//);

    // b comes back (same data folder, same name): a serves its log again, and the job finishes there.
    b = await startFerry({ databaseUrl: db.url, node: 'b', capacity, token: a.token, dataDir: bDir });
    await waitFor('a to serve the log from b again', async () => {
      const again = await a.api('GET', `/v1/migrations/${held}/logs`);
      return again.status === 200 && again.headers.get('x-ferry-answered-by') === 'b' && String(again.body).includes(`started-${held}`);
    });
    go('shop');
    await waitFor(`${held} to succeed`, async () => (await a.api('GET', `/v1/migrations/${held}`)).body.state === 'succeeded', 60_000);
  });
});
