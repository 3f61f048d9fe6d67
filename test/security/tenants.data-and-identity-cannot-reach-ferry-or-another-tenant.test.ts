/**
 * Where tenant data may live and whose it is (issue 8, "Tenant data is not checked" and the tenant
 * identity of "a migration step runs as Ferry itself"), through the real API of a real server.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry } from '../support/harness.ts';
import { assertProblem } from '../api/problem-assertions.ts';

async function withFerry(t: TestContext): Promise<Ferry> {
  const f = await startFerry();
  t.after(async () => {
    await f.stop();
    removeDir(f.dataDir);
  });
  return f;
}

const STEADY = { cpu: '1', memory: '256Mi' };

void test("data overlapping Ferry's state, another tenant, or not a clean absolute path is refused and nothing is written", async (t) => {
  const f = await withFerry(t);
  const outside = tempDir('ferry-tenant-data-');
  t.after(() => removeDir(outside));
  assert.equal((await f.api('PUT', '/v1/tenants/blog', { steadyState: STEADY, data: join(outside, 'blog') })).status, 201);
  const before = (await f.api('GET', '/v1/tenants')).body;
  for (const data of [
    '/',
    f.dataDir,
    join(f.dataDir, 'token'),
    join(f.dataDir, 'tenants', 'blog'),
    'relative/shop',
    '../../../etc',
    join(outside, 'blog'),
    join(outside, 'blog', 'x'),
    outside,
    `${outside}/./shop`,
  ]) {
    const res = await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, data });
    const problem = assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    assert.match(String(problem.detail), /data: /, `${data}: ${String(problem.detail)}`);
  }
  assert.deepEqual((await f.api('GET', '/v1/tenants')).body, before, 'no refused PUT wrote anything');
  // The default folder, inside Ferry's data folder, is Ferry's own choice and allowed.
  assert.equal((await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY })).status, 201);
});

void test('each tenant gets an identity of its own; root, a shared uid and allowRoot on processes are refused', async (t) => {
  const f = await withFerry(t);
  const a = await f.api('PUT', '/v1/tenants/a', { steadyState: STEADY });
  const b = await f.api('PUT', '/v1/tenants/b', { steadyState: STEADY });
  assert.equal(a.status, 201);
  assert.ok(a.body.runAs.uid >= 200_000 && a.body.runAs.uid <= 299_999, JSON.stringify(a.body));
  assert.notEqual(a.body.runAs.uid, b.body.runAs.uid);
  assert.equal((await f.api('GET', '/v1/tenants/a')).body.runAs.uid, a.body.runAs.uid);
  const explicit = await f.api('PUT', '/v1/tenants/c', { steadyState: STEADY, runAs: { uid: 4321, gid: 4322 } });
  assert.deepEqual(explicit.body.runAs, { uid: 4321, gid: 4322 });
  assertProblem(await f.api('PUT', '/v1/tenants/d', { steadyState: STEADY, runAs: { uid: 0, gid: 0 } }), 422, 'FERRY_INVALID_REQUEST');
  assertProblem(await f.api('PUT', '/v1/tenants/d', { steadyState: STEADY, runAs: { uid: 4321, gid: 1 } }), 409, 'FERRY_CONFLICT');
  const root = assertProblem(await f.api('PUT', '/v1/tenants/d', { steadyState: STEADY, allowRoot: true }), 422, 'FERRY_INVALID_REQUEST');
  assert.match(String(root.detail), /never run as root/);
  // A swarm placement means nothing to a process node: refused, not ignored.
  const placed = assertProblem(await f.api('PUT', '/v1/tenants/d', { steadyState: STEADY, placement: 'host-b' }), 422, 'FERRY_INVALID_REQUEST');
  assert.match(String(placed.detail), /placement is for the swarm substrate/);
  assertProblem(await f.api('PUT', '/v1/tenants/d', { steadyState: STEADY, placement: 'node.hostname==$(reboot)' }), 422, 'FERRY_INVALID_REQUEST');
  assert.equal((await f.api('GET', '/v1/tenants/d')).status, 404);
  // Its data folder is created for it and belongs to it.
  const folder = statSync(join(f.dataDir, 'tenants', 'c'));
  assert.equal(folder.uid, 4321);
  assert.equal(folder.gid, 4322);
});

void test('an existing folder is handed over to the tenant at registration', async (t) => {
  const f = await withFerry(t);
  const data = tempDir('ferry-tenant-existing-');
  t.after(() => removeDir(data));
  mkdirSync(join(data, 'nested'));
  writeFileSync(join(data, 'nested', 'file'), 'x');
  const res = await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, data, runAs: { uid: 4444, gid: 4445 } });
  assert.equal(res.status, 201);
  assert.match(String(res.body.handedOver), /4444/);
  for (const path of [data, join(data, 'nested'), join(data, 'nested', 'file')]) assert.equal(statSync(path).uid, 4444, path);
});

void test('data and runAs of a tenant with a held migration cannot change, so a wipe can never reach another folder', async (t) => {
  const f = await withFerry(t);
  const victim = tempDir('ferry-victim-');
  t.after(() => removeDir(victim));
  writeFileSync(join(victim, 'precious'), 'keep me');
  assert.equal((await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY })).status, 201);
  const filed = await f.api(
    'POST',
    '/v1/migrations',
    request('shop', [{ name: 'fail', run: sh('exit 3') }], { snapshot: 'never', wipe: sh('find "$FERRY_TENANT_DATA" -mindepth 1 -delete') }),
  );
  assert.equal(filed.status, 201, JSON.stringify(filed.body));
  assert.equal((await f.api('POST', `/v1/migrations/${filed.body.id}/approve`)).status, 200);
  await waitFor('held', async () => (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body.state === 'held');
  const busy = assertProblem(await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, data: victim }), 409, 'FERRY_TENANT_BUSY');
  assert.match(String(busy.detail), new RegExp(`held by migration ${filed.body.id}`));
  assertProblem(await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, runAs: { uid: 7777, gid: 7777 } }), 409, 'FERRY_TENANT_BUSY');
  // Raising the steady-state is still allowed while held.
  assert.equal((await f.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '2', memory: '512Mi' } })).status, 200);
  assert.equal((await f.api('POST', `/v1/migrations/${filed.body.id}/actions`, { action: 'wipe-and-retry', reason: 'again' })).status, 200);
  await waitFor('held again', async () => {
    const m = (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body;
    return m.state === 'held' && m.attempts.length === 2;
  });
  assert.deepEqual(readdirSync(victim), ['precious']);
});

void test('a peak must declare every steady-state dimension and only dimensions the process substrate enforces', async (t) => {
  const f = await withFerry(t);
  assert.equal((await f.api('PUT', '/v1/tenants/pids', { steadyState: { ...STEADY, pids: 50 } })).status, 201);
  const missing = assertProblem(await f.api('POST', '/v1/migrations/check', request('pids', [{ name: 'x', run: ['true'] }])), 422, 'FERRY_REJECTED');
  assert.deepEqual(
    (missing.reasons as Array<{ code: string; dimension: string }>).map((r) => [r.code, r.dimension]),
    [['PEAK_MISSING_DIMENSION', 'pids']],
  );
  assert.equal((await f.api('PUT', '/v1/tenants/disk', { steadyState: { ...STEADY, 'ephemeral-storage': '20Mi' } })).status, 201);
  const disk = assertProblem(
    await f.api(
      'POST',
      '/v1/migrations',
      request('disk', [{ name: 'x', run: ['true'] }], { peak: { cpu: '500m', memory: '256Mi', 'ephemeral-storage': '20Mi' } }),
    ),
    422,
    'FERRY_REJECTED',
  );
  assert.deepEqual(
    (disk.reasons as Array<{ code: string; dimension: string }>).map((r) => [r.code, r.dimension]),
    [['DIMENSION_NOT_ENFORCED', 'ephemeral-storage']],
  );
  assert.deepEqual((await f.api('GET', '/v1/migrations')).body, [], 'nothing filed');
});

void test('migrations record that their attempt ran confined', async (t) => {
  const f = await withFerry(t);
  assert.equal((await f.api('PUT', '/v1/tenants/shop', { steadyState: STEADY })).status, 201);
  const filed = await f.api('POST', '/v1/migrations', request('shop', [{ name: 'ok', run: ['true'] }]));
  await f.api('POST', `/v1/migrations/${filed.body.id}/approve`);
  const done = await waitFor('succeeded', async () => {
    const m = (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body;
    return m.state === 'succeeded' ? m : null;
  });
  assert.equal(done.isolated, f.service.runner.substrate.isolation().isolated);
  assert.equal(done.isolated, true, 'the test suite runs as root, where jobs are confined');
});
