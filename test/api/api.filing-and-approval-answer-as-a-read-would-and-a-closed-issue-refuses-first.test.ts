/**
 * The answers of POST /v1/migrations and POST …/approve are built from what filing and approval
 * already read (the tenant the gate judged; no attempts or artifacts before a first attempt), and
 * are exactly what GET /v1/migrations/:id answers for the migration as they left it. Filing on a
 * closed issue is refused as closed whether or not the gate would admit the request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const ISSUE = 'github:acme/platform#31';

void describe('filing and approval answers', () => {
  let ferry: Ferry;

  before(async () => {
    ferry = await startFerry();
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' } })).status, 201);
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  const get = async (id: string) => (await ferry.api('GET', `/v1/migrations/${id}`)).body as Record<string, unknown>;

  void test('filing and approval answer what a read of the migration answers then', async () => {
    const tenantNode = ((await ferry.api('GET', '/v1/tenants/shop')).body as { node: string }).node;
    // The first holds the tenant while it runs, so the second stays queued once approved.
    const holder = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'hold', run: sh('sleep 60') }], { issue: ISSUE }));
    assert.equal(holder.status, 201, JSON.stringify(holder.body));
    assert.equal(holder.body.node, tenantNode);
    assert.deepEqual([holder.body.attempts, holder.body.artifacts], [[], []]);
    assert.deepEqual(holder.body, await get(holder.body.id), 'the filing answer is the migration as filed');
    assert.equal((await ferry.api('POST', `/v1/migrations/${holder.body.id}/approve`, {})).status, 200);
    await waitFor('the holder to run', async () => (await get(holder.body.id)).state === 'running');

    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'next', run: sh('true') }], { issue: ISSUE }));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    const approved = await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.state, 'queued');
    assert.equal(approved.body.node, tenantNode);
    assert.deepEqual(
      approved.body.events.map((e: { kind: string }) => e.kind),
      ['file', 'approve', 'gate-pass'],
    );
    assert.deepEqual(approved.body, await get(filed.body.id), 'the approval answer is the migration as approved');
  });

  void test('filing on a closed issue is refused as closed, before any gate reason', async () => {
    const closed = await ferry.api('POST', `/v1/issues/${encodeURIComponent(ISSUE)}/close`, {});
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    const before = (await ferry.api('GET', `/v1/migrations?issue=${encodeURIComponent(ISSUE)}`)).body as unknown[];

    const admissible = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'x', run: sh('true') }], { issue: ISSUE }));
    const overCap = await ferry.api(
      'POST',
      '/v1/migrations',
      request('shop', [{ name: 'x', run: sh('true') }], { issue: ISSUE, peak: { cpu: '3', memory: '2Gi' } }),
    );
    for (const res of [admissible, overCap]) {
      const body = assertProblem(res, 409, 'FERRY_ISSUE_CLOSED');
      assert.equal(body.detail, `issue ${ISSUE} is closed; migrations are filed on open issues only (open a new one)`);
    }
    assert.deepEqual((await ferry.api('GET', `/v1/migrations?issue=${encodeURIComponent(ISSUE)}`)).body, before, 'nothing was filed');
  });
});
