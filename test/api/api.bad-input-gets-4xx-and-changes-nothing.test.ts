/**
 * Every bad input gets a 4xx problem with a reason, and nothing is half-written: after each
 * refused request the tenants, the migrations and the history of an existing migration are
 * exactly as before.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { removeDir, request, sh, startFerry, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const YAML = { 'content-type': 'application/yaml' };
const JSON_TYPE = { 'content-type': 'application/json' };

/** A valid request for tenant shop (steady 500m / 1Gi): peak exactly 2x. */
function good(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return request('shop', [{ name: 'copy', run: sh('true') }], { peak: { cpu: '1', memory: '2Gi' }, ...extra });
}

void describe('bad input gets a 4xx and changes nothing', () => {
  let ferry: Ferry;
  let existing: string;
  let baseline: unknown;

  async function snapshot(): Promise<unknown> {
    const [migrations, tenants, detail] = await Promise.all([
      ferry.api('GET', '/v1/migrations'),
      ferry.api('GET', '/v1/tenants'),
      ferry.api('GET', `/v1/migrations/${existing}`),
    ]);
    assert.equal(migrations.status, 200);
    assert.equal(tenants.status, 200);
    assert.equal(detail.status, 200);
    return { migrations: migrations.body, tenants: tenants.body, detail: detail.body };
  }

  before(async () => {
    // Small node capacity, so a peak within 2x of a big tenant can still exceed what the node has.
    ferry = await startFerry({ capacity: { cpu: '2', memory: '4Gi' } });
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '500m', memory: '1Gi' } })).status, 201);
    assert.equal((await ferry.api('PUT', '/v1/tenants/big', { steadyState: { cpu: '2', memory: '4Gi' } })).status, 201);
    const filed = await ferry.api('POST', '/v1/migrations', good());
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    existing = filed.body.id;
    baseline = await snapshot();
  });

  afterEach(async () => {
    assert.deepEqual(await snapshot(), baseline, 'a refused request changed the store');
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('a peak of exactly 2x steady-state is admitted (201), then the baseline is retaken', async () => {
    const res = await ferry.api('POST', '/v1/migrations', good({ issue: 'github:acme/platform#2' }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.state, 'filed');
    assert.deepEqual(res.body.peak, { cpu: 1000, memory: 2 * 1024 ** 3 });
    assert.equal(res.headers.get('location'), `/v1/migrations/${res.body.id}`);
    baseline = await snapshot();
  });

  // ── bodies that cannot be parsed ──

  void test('malformed JSON is 400', async () => {
    const res = await ferry.api('POST', '/v1/migrations', '{"issue": "github:acme/platform#1", "tenant":', JSON_TYPE);
    assertProblem(res, 400, 'FERRY_BAD_REQUEST');
  });

  void test('malformed YAML (application/yaml) is 400', async () => {
    const res = await ferry.api('POST', '/v1/migrations', 'issue: [github:acme/platform#1\ntenant: shop\n  peak: {cpu: 1', YAML);
    const body = assertProblem(res, 400, 'FERRY_BAD_REQUEST');
    assert.match(body.detail as string, /YAML/);
  });

  void test('YAML with a duplicate key is refused, not resolved by picking one', async () => {
    const doc = `${toYaml(good())}tenant: big\n`;
    const res = await ferry.api('POST', '/v1/migrations', doc, YAML);
    assertProblem(res, 400, 'FERRY_BAD_REQUEST');
  });

  void test('a body over 1 MiB is 413, as JSON and as YAML', async () => {
    const huge = good({ env: { BLOB: 'x'.repeat(1024 * 1024 + 10) } });
    assertProblem(await ferry.api('POST', '/v1/migrations', huge), 413, 'FERRY_PAYLOAD_TOO_LARGE');
    assertProblem(await ferry.api('POST', '/v1/migrations', toYaml(huge), YAML), 413, 'FERRY_PAYLOAD_TOO_LARGE');
    assertProblem(await ferry.api('POST', '/v1/migrations/check', huge), 413, 'FERRY_PAYLOAD_TOO_LARGE');
  });

  void test('text/plain is 415', async () => {
    const res = await ferry.api('POST', '/v1/migrations', JSON.stringify(good()), { 'content-type': 'text/plain' });
    assertProblem(res, 415, 'FERRY_UNSUPPORTED_MEDIA_TYPE');
  });

  void test('a content type that is neither JSON nor YAML is 415', async () => {
    for (const type of ['application/xml', 'application/octet-stream', 'multipart/form-data; boundary=x']) {
      const res = await ferry.api('POST', '/v1/migrations', JSON.stringify(good()), { 'content-type': type });
      const body = assertProblem(res, 415, 'FERRY_UNSUPPORTED_MEDIA_TYPE');
      assert.match(body.detail as string, /application\/json/);
    }
  });

  void test('an empty body is refused with a reason', async () => {
    const res = await ferry.api('POST', '/v1/migrations', '', JSON_TYPE);
    assert.ok(res.status >= 400 && res.status < 500, `got ${res.status}`);
    assertProblem(res, res.status);
  });

  // ── documents that do not fit the schema ──

  void test('an unknown top-level field is 422 with problems naming it', async () => {
    const res = await ferry.api('POST', '/v1/migrations', good({ colour: 'red' }));
    const body = assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    const problems = body.problems as Array<{ path: string; message: string }>;
    assert.ok(Array.isArray(problems) && problems.length > 0, 'problems listed');
    assert.ok(
      problems.some((p) => p.message.includes('colour')),
      JSON.stringify(problems),
    );
  });

  void test('an unknown field inside a step is 422 with its path', async () => {
    const doc = good({ steps: [{ name: 'copy', run: sh('true'), retries: 3 }] });
    const body = assertProblem(await ferry.api('POST', '/v1/migrations', doc), 422, 'FERRY_INVALID_REQUEST');
    const problems = body.problems as Array<{ path: string; message: string }>;
    assert.ok(
      problems.some((p) => p.path.startsWith('steps.0') && p.message.includes('retries')),
      JSON.stringify(problems),
    );
  });

  void test('an unknown field is refused in YAML too', async () => {
    const res = await ferry.api('POST', '/v1/migrations', toYaml(good({ retry: true })), YAML);
    const body = assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    assert.ok((body.problems as Array<{ message: string }>).some((p) => p.message.includes('retry')));
  });

  for (const [label, peak, path] of [
    ['a word as cpu', { cpu: 'lots', memory: '1Gi' }, 'peak.cpu'],
    ['a negative memory', { cpu: '1', memory: '-1Gi' }, 'peak.memory'],
    ['a fraction of a millicore', { cpu: '0.0001', memory: '1Gi' }, 'peak.cpu'],
    ['an unknown suffix', { cpu: '1', memory: '2GB' }, 'peak.memory'],
    ['an empty quantity', { cpu: '', memory: '1Gi' }, 'peak.cpu'],
  ] as const) {
    void test(`a bad quantity (${label}) is 422 naming the field`, async () => {
      const body = assertProblem(await ferry.api('POST', '/v1/migrations', good({ peak })), 422);
      assert.ok(
        (body.problems as Array<{ path: string }>).some((p) => p.path === path),
        JSON.stringify(body.problems),
      );
    });
  }

  for (const missing of ['cpu', 'memory'] as const) {
    void test(`a peak without ${missing} is 422`, async () => {
      const peak: Record<string, string> = { cpu: '1', memory: '1Gi' };
      delete peak[missing];
      const body = assertProblem(await ferry.api('POST', '/v1/migrations', good({ peak })), 422, 'FERRY_INVALID_REQUEST');
      assert.ok(
        (body.problems as Array<{ path: string }>).some((p) => p.path === `peak.${missing}`),
        JSON.stringify(body.problems),
      );
    });
  }

  void test('other invalid documents are 422: no steps, duplicate step names, bad issue ref, FERRY_ env, bad timeout', async () => {
    for (const doc of [
      good({ steps: [] }),
      good({
        steps: [
          { name: 'a', run: sh('true') },
          { name: 'a', run: sh('true') },
        ],
      }),
      good({ issue: 'acme/platform 742' }),
      good({ env: { FERRY_TENANT: 'other' } }),
      good({ steps: [{ name: 'a', run: sh('true'), timeout: 'soon' }] }),
      good({ snapshot: 'sometimes' }),
      good({ steps: [{ name: 'a', run: [] }] }),
      [good()],
      'just a string',
    ]) {
      const res = await ferry.api('POST', '/v1/migrations', typeof doc === 'string' ? JSON.stringify(doc) : doc, JSON_TYPE);
      assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    }
  });

  // ── the admission rule ──

  void test('an unknown tenant is 422 with reasons[0].code UNKNOWN_TENANT', async () => {
    const res = await ferry.api('POST', '/v1/migrations', good({ tenant: 'nobody' }));
    const body = assertProblem(res, 422, 'FERRY_REJECTED');
    const reasons = body.reasons as Array<{ code: string; message: string }>;
    assert.equal(reasons[0]?.code, 'UNKNOWN_TENANT');
    assert.match(reasons[0]?.message ?? '', /nobody/);
  });

  void test('a peak over 2x steady-state is 422 PEAK_EXCEEDS_CAP with the numbers', async () => {
    // memory: 2049Mi against steady 1Gi (cap 2Gi); cpu stays at exactly 2x.
    const res = await ferry.api('POST', '/v1/migrations', good({ peak: { cpu: '1', memory: '2049Mi' } }));
    const body = assertProblem(res, 422, 'FERRY_REJECTED');
    assert.deepEqual(
      (body.reasons as Array<Record<string, unknown>>).map(({ code, dimension, peak, steadyState, cap }) => ({ code, dimension, peak, steadyState, cap })),
      [{ code: 'PEAK_EXCEEDS_CAP', dimension: 'memory', peak: 2049 * 1024 ** 2, steadyState: 1024 ** 3, cap: 2 * 1024 ** 3 }],
    );
    assert.match((body.reasons as Array<{ message: string }>)[0]?.message ?? '', /lower the peak or raise/);
  });

  void test('one millicore over 2x is refused too', async () => {
    const body = assertProblem(await ferry.api('POST', '/v1/migrations', good({ peak: { cpu: '1001m', memory: '1Gi' } })), 422, 'FERRY_REJECTED');
    assert.deepEqual(
      (body.reasons as Array<Record<string, unknown>>).map((r) => [r.code, r.dimension, r.peak, r.cap]),
      [['PEAK_EXCEEDS_CAP', 'cpu', 1001, 1000]],
    );
  });

  void test('a peak over the node capacity is 422 PEAK_EXCEEDS_CAPACITY', async () => {
    // Tenant big: steady 2 cpu / 4Gi, so 3 cpu / 6Gi is within 2x but over the node's 2 cpu / 4Gi.
    const res = await ferry.api('POST', '/v1/migrations', good({ tenant: 'big', peak: { cpu: '3', memory: '6Gi' } }));
    const body = assertProblem(res, 422, 'FERRY_REJECTED');
    const reasons = body.reasons as Array<Record<string, unknown>>;
    assert.deepEqual(
      reasons.map((r) => r.code),
      ['PEAK_EXCEEDS_CAPACITY', 'PEAK_EXCEEDS_CAPACITY'],
    );
    assert.deepEqual(
      reasons.map((r) => [r.dimension, r.peak, r.cap]),
      [
        ['cpu', 3000, 2000],
        ['memory', 6 * 1024 ** 3, 4 * 1024 ** 3],
      ],
    );
  });

  void test('a dimension the tenant has no steady-state for is refused (fail closed)', async () => {
    // pids is a dimension the process substrate enforces, so the only reason is the missing steady-state.
    const res = await ferry.api('POST', '/v1/migrations', good({ peak: { cpu: '1', memory: '1Gi', pids: 100 } }));
    const body = assertProblem(res, 422, 'FERRY_REJECTED');
    assert.deepEqual(
      (body.reasons as Array<Record<string, unknown>>).map((r) => [r.code, r.dimension]),
      [['NO_STEADY_STATE', 'pids']],
    );
  });

  // ── tenants ──

  for (const [label, path] of [
    ['..%2Fetc', '/v1/tenants/..%2Fetc'],
    ['%2e%2e', '/v1/tenants/%2e%2e'],
    ['%2E%2E%2F%2E%2E', '/v1/tenants/%2E%2E%2F%2E%2E'],
    ['a%2Fb', '/v1/tenants/a%2Fb'],
    ['upper case', '/v1/tenants/Shop'],
    ['64 characters', `/v1/tenants/${'a'.repeat(64)}`],
    ['a leading dash', '/v1/tenants/-shop'],
    ['a dot', '/v1/tenants/shop.v2'],
  ] as const) {
    void test(`PUT /v1/tenants/:id with a path-like or invalid id (${label}) is refused with a reason`, async () => {
      const res = await ferry.api('PUT', path, { steadyState: { cpu: '1', memory: '1Gi' } });
      assert.ok(res.status === 400 || res.status === 404, `got ${res.status}: ${JSON.stringify(res.body)}`);
      assertProblem(res, res.status);
    });
  }

  void test('GET /v1/tenants/:id with a path-like id is refused; an unknown tenant is 404', async () => {
    assertProblem(await ferry.api('GET', '/v1/tenants/..%2Fetc'), 400, 'FERRY_BAD_REQUEST');
    const body = assertProblem(await ferry.api('GET', '/v1/tenants/nobody'), 404, 'FERRY_NOT_FOUND');
    assert.match(body.detail as string, /PUT \/v1\/tenants\/nobody/);
  });

  void test('a 63-character tenant id is the longest accepted (boundary of the 64-character refusal)', async () => {
    // Validated but not written: an unknown field in the body stops it after the id check.
    const res = await ferry.api('PUT', `/v1/tenants/${'a'.repeat(63)}`, { steadyState: { cpu: '1', memory: '1Gi' }, colour: 'red' });
    const body = assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    assert.ok((body.problems as Array<{ message: string }>).some((p) => p.message.includes('colour')));
  });

  void test('a bad tenant document is 422: unknown field, bad quantity, bad dimension name, not an object', async () => {
    for (const doc of [
      { steadyState: { cpu: '1', memory: '1Gi' }, replicas: 2 },
      { steadyState: { cpu: 'one', memory: '1Gi' } },
      { steadyState: { CPU: '1' } },
      { steadyState: 'big' },
      {},
    ]) {
      const res = await ferry.api('PUT', '/v1/tenants/shop', doc);
      assertProblem(res, 422, 'FERRY_INVALID_REQUEST');
    }
  });

  // ── queries and routes ──

  void test('an unknown query parameter on GET /v1/migrations is 400', async () => {
    const res = await ferry.api('GET', '/v1/migrations?colour=red');
    const body = assertProblem(res, 400);
    assert.match(body.detail as string, /colour/);
  });

  void test('routes that take no query refuse one: GET /v1/nodes and /v1/capacity', async () => {
    for (const path of ['/v1/nodes', '/v1/capacity']) {
      const body = assertProblem(await ferry.api('GET', `${path}?colour=red`), 400, 'FERRY_BAD_REQUEST');
      assert.match(body.detail as string, /colour/);
      assert.equal((await ferry.api('GET', path)).status, 200);
    }
  });

  void test('an unknown state filter is 400 naming the states', async () => {
    const body = assertProblem(await ferry.api('GET', '/v1/migrations?state=filed,bogus'), 400, 'FERRY_BAD_REQUEST');
    assert.match(body.detail as string, /bogus/);
    assert.match(body.detail as string, /held/);
  });

  void test('a malformed tenant or issue filter is refused', async () => {
    const tenant = await ferry.api('GET', '/v1/migrations?tenant=..%2Fetc');
    assert.ok(tenant.status === 400 || tenant.status === 422, `got ${tenant.status}`);
    assertProblem(tenant, tenant.status);
    assertProblem(await ferry.api('GET', '/v1/migrations?issue=not-a-ref'), 400, 'FERRY_BAD_REQUEST');
  });

  void test('an unknown migration id is 404, well-formed or not', async () => {
    assertProblem(await ferry.api('GET', '/v1/migrations/m-zzzzzz-00000000'), 404, 'FERRY_NOT_FOUND');
    assertProblem(await ferry.api('GET', '/v1/migrations/..%2F..%2Fetc'), 404, 'FERRY_NOT_FOUND');
    assertProblem(await ferry.api('GET', '/v1/migrations/m-zzzzzz-00000000/logs'), 404, 'FERRY_NOT_FOUND');
    assertProblem(await ferry.api('POST', '/v1/migrations/m-zzzzzz-00000000/approve', {}), 404, 'FERRY_NOT_FOUND');
    assertProblem(await ferry.api('POST', '/v1/migrations/m-zzzzzz-00000000/actions', { action: 'abandon', reason: 'x' }), 404, 'FERRY_NOT_FOUND');
  });

  void test('an unknown route is 404, and a wrong method on a known one is a 4xx', async () => {
    const body = assertProblem(await ferry.api('GET', '/v1/nothing-here'), 404, 'FERRY_NOT_FOUND');
    assert.match(body.detail as string, /\/v1\/nothing-here/);
    const wrongMethod = await ferry.api('DELETE', '/v1/tenants/shop');
    assert.ok(wrongMethod.status >= 400 && wrongMethod.status < 500, `got ${wrongMethod.status}`);
    assertProblem(wrongMethod, wrongMethod.status);
  });

  void test('a migration that has not run has no log (404 with a reason)', async () => {
    const body = assertProblem(await ferry.api('GET', `/v1/migrations/${existing}/logs`), 404, 'FERRY_NOT_FOUND');
    assert.match(body.detail as string, /not started/);
    assertProblem(await ferry.api('GET', `/v1/migrations/${existing}/logs?attempt=zero`), 400, 'FERRY_BAD_REQUEST');
  });

  // ── actions ──

  void test('an action without a reason is 422', async () => {
    assertProblem(await ferry.api('POST', `/v1/migrations/${existing}/actions`, { action: 'abandon' }), 422, 'FERRY_INVALID_REQUEST');
    const blank = await ferry.api('POST', `/v1/migrations/${existing}/actions`, { action: 'abandon', reason: '   ' });
    assert.ok(blank.status === 409 || blank.status === 422, `got ${blank.status}`);
    assertProblem(blank, blank.status);
  });

  void test('an unknown action is 422', async () => {
    const body = assertProblem(
      await ferry.api('POST', `/v1/migrations/${existing}/actions`, { action: 'retry-forever', reason: 'why not' }),
      422,
      'FERRY_INVALID_REQUEST',
    );
    assert.ok((body.problems as Array<{ path: string }>).some((p) => p.path === 'action'));
  });

  void test('an action on a migration that is not held is 409 FERRY_WRONG_STATE', async () => {
    for (const action of ['wipe-and-retry', 'resume', 'accept-partial', 'abandon']) {
      const body = assertProblem(await ferry.api('POST', `/v1/migrations/${existing}/actions`, { action, reason: 'testing' }), 409, 'FERRY_WRONG_STATE');
      assert.match(body.detail as string, /held/);
    }
  });

  void test('approve and cancel with unknown body fields are 422', async () => {
    assertProblem(await ferry.api('POST', `/v1/migrations/${existing}/approve`, { force: true }), 422, 'FERRY_INVALID_REQUEST');
    assertProblem(await ferry.api('POST', `/v1/migrations/${existing}/cancel`, { reason: 'x', now: true }), 422, 'FERRY_INVALID_REQUEST');
    assertProblem(await ferry.api('POST', '/v1/issues/github%3Aacme%2Fplatform%231/close', { force: true }), 422, 'FERRY_INVALID_REQUEST');
  });

  void test('closing a malformed issue ref is 400', async () => {
    assertProblem(await ferry.api('POST', '/v1/issues/not-a-ref/close', {}), 400, 'FERRY_BAD_REQUEST');
  });

  void test('the store is as it was before all of these', async () => {
    const now = (await snapshot()) as { migrations: Array<{ id: string; state: string }>; tenants: Array<{ id: string }> };
    assert.deepEqual(now, baseline);
    assert.deepEqual(
      now.tenants.map((t) => t.id),
      ['big', 'shop'],
    );
    assert.deepEqual(
      now.migrations.map((m) => m.state),
      ['filed', 'filed'],
    );
  });
});
