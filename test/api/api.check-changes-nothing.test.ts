/** POST /v1/migrations/check: the filing-time verdict, which creates and changes nothing. */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { removeDir, request, sh, startFerry, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

void describe('check', () => {
  let ferry: Ferry;
  let tenantsBefore: unknown;

  before(async () => {
    ferry = await startFerry();
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '750m', memory: '1Gi' } })).status, 201);
    tenantsBefore = (await ferry.api('GET', '/v1/tenants')).body;
  });

  afterEach(async () => {
    const migrations = await ferry.api('GET', '/v1/migrations');
    assert.equal(migrations.status, 200);
    assert.deepEqual(migrations.body, [], 'check created a migration');
    assert.deepEqual((await ferry.api('GET', '/v1/tenants')).body, tenantsBefore, 'check changed a tenant');
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  const doc = (peak: Record<string, string>, tenant = 'shop') => request(tenant, [{ name: 'copy', run: sh('true') }], { peak });

  void test('an admitted request is 200 {ok: true, verdict} with the steady-state it was computed from', async () => {
    const res = await ferry.api('POST', '/v1/migrations/check', doc({ cpu: '1500m', memory: '2Gi' }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ok, true);
    const v = res.body.verdict;
    assert.equal(v.ok, true);
    assert.equal(v.tenant, 'shop');
    assert.deepEqual(v.steadyState, { cpu: 750, memory: 1024 ** 3 });
    assert.deepEqual(v.reasons, []);
    assert.deepEqual(
      v.dimensions.map((d: { dimension: string; peak: number; cap: number; ok: boolean }) => [d.dimension, d.peak, d.cap, d.ok]),
      [
        ['cpu', 1500, 1500, true],
        ['memory', 2 * 1024 ** 3, 2 * 1024 ** 3, true],
      ],
    );
  });

  void test('a request in YAML is checked the same way', async () => {
    const res = await ferry.api('POST', '/v1/migrations/check', toYaml(doc({ cpu: '1', memory: '1Gi' })), { 'content-type': 'application/yaml' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.verdict.ok, true);
  });

  void test('a refused request is 422 with reasons and the verdict', async () => {
    const res = await ferry.api('POST', '/v1/migrations/check', doc({ cpu: '1501m', memory: '3Gi' }));
    const body = assertProblem(res, 422, 'FERRY_REJECTED');
    assert.deepEqual(
      (body.reasons as Array<Record<string, unknown>>).map((r) => [r.code, r.dimension, r.peak, r.steadyState, r.cap]),
      [
        ['PEAK_EXCEEDS_CAP', 'cpu', 1501, 750, 1500],
        ['PEAK_EXCEEDS_CAP', 'memory', 3 * 1024 ** 3, 1024 ** 3, 2 * 1024 ** 3],
      ],
    );
    assert.equal((body.verdict as { ok: boolean }).ok, false);
    assert.equal(body.migrationId, undefined, 'a check names no migration');
  });

  void test('an unknown tenant is 422 UNKNOWN_TENANT', async () => {
    const body = assertProblem(await ferry.api('POST', '/v1/migrations/check', doc({ cpu: '1', memory: '1Gi' }, 'ghost')), 422, 'FERRY_REJECTED');
    assert.equal((body.reasons as Array<{ code: string }>)[0]?.code, 'UNKNOWN_TENANT');
  });

  void test('an invalid document is 422 FERRY_INVALID_REQUEST with problems', async () => {
    const body = assertProblem(
      await ferry.api('POST', '/v1/migrations/check', { ...doc({ cpu: '1', memory: '1Gi' }), extra: 1 }),
      422,
      'FERRY_INVALID_REQUEST',
    );
    assert.ok(Array.isArray(body.problems));
  });
});
