/**
 * `GET /v1/nodes` (a filer may read it) lists this node `up`, with its address, substrate and
 * capacity, and while migrations run on it their ids and the sum of their declared peaks (numbers:
 * cpu in millicores, memory in bytes, as /v1/capacity). A token limited to tenants sees every node
 * but only its own tenants' running migrations, and peaks summed over those alone. A migration's
 * view names its tenant's node, in the list and in the detail, and each attempt the node that ran it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseQuantity } from '../../src/core/quantity.ts';
import { call, removeDir, request, sh, startFerry, tempDir, waitFor, writeTokensFile, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const SHOP_FILER = 'shop-filer-token-0123456789abcdef';
const BLOG_FILER = 'blog-filer-token-0123456789abcdef';
const FILER = 'any-filer-token-0123456789abcdef0';

/** Waits (at most a minute) for the test to let it finish. */
const WAIT = 'echo started; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done; echo finished-$i';

interface NodeView {
  name: string;
  state: string;
  url: string | null;
  substrate: string;
  capacity: Record<string, number>;
  enforced: string[] | null;
  running: { migrations: string[]; peaks: Record<string, number> };
  lastSeenAt: string;
  startedAt: string;
  lostAt: string | null;
  self: boolean;
}

void describe('GET /v1/nodes', () => {
  let ferry: Ferry;
  let tokensDir: string;
  const ids: Record<string, string> = {};
  const nodesAs = async (token: string) => {
    const res = await call(ferry.url, token, 'GET', '/v1/nodes');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as { nodes: NodeView[]; scoped: boolean };
  };

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'shop-ci', role: 'filer', token: SHOP_FILER, tenants: ['shop'] },
      { name: 'blog-ci', role: 'filer', token: BLOG_FILER, tenants: ['blog'] },
      { name: 'reader', role: 'filer', token: FILER },
    ]);
    ferry = await startFerry({ tokensFile, node: 'alpha', capacity: { cpu: '4', memory: '4Gi' } });
    for (const t of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  });

  after(async () => {
    for (const t of ['shop', 'blog']) writeFileSync(join(ferry.dataDir, 'tenants', t, 'go'), '');
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('lists this node up, with its address, substrate and capacity, and nothing running', async () => {
    const { nodes, scoped } = await nodesAs(FILER);
    assert.equal(scoped, false);
    assert.equal(nodes.length, 1, JSON.stringify(nodes));
    const [me] = nodes as [NodeView];
    assert.equal(me.name, 'alpha');
    assert.equal(me.state, 'up');
    assert.equal(me.self, true);
    assert.equal(me.url, ferry.url);
    assert.equal(me.substrate, 'process');
    assert.deepEqual(me.capacity, { cpu: 4000, memory: parseQuantity('memory', '4Gi') });
    assert.deepEqual(me.running, { migrations: [], peaks: {} });
    assert.equal(me.lostAt, null);
    assert.ok(Date.parse(me.startedAt) <= Date.parse(me.lastSeenAt), `${me.startedAt} <= ${me.lastSeenAt}`);
    assertProblem(await call(ferry.url, null, 'GET', '/v1/nodes'), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test('while migrations run, it shows their ids and the sum of their peaks', async () => {
    const peaks = { shop: { cpu: '500m', memory: '256Mi' }, blog: { cpu: '1500m', memory: '1Gi' } };
    for (const [tenant, peak] of Object.entries(peaks)) {
      const filed = await ferry.api('POST', '/v1/migrations', request(tenant, [{ name: 'wait', run: sh(WAIT), timeout: '5m' }], { peak }));
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      ids[tenant] = filed.body.id;
      assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
    }
    await waitFor('both to run', async () => (await ferry.api('GET', '/v1/migrations?state=running')).body.length === 2);

    const [me] = (await nodesAs(FILER)).nodes as [NodeView];
    assert.deepEqual(me.running.migrations.sort(), [ids.shop, ids.blog].sort());
    assert.deepEqual(me.running.peaks, { cpu: 2000, memory: parseQuantity('memory', '256Mi') + parseQuantity('memory', '1Gi') });

    // /v1/capacity says which node it speaks for, and counts the same peaks.
    const cap = await ferry.api('GET', '/v1/capacity');
    assert.equal(cap.body.node, 'alpha');
    assert.deepEqual(cap.body.used, me.running.peaks);
  });

  void test("a token limited to tenants sees every node but only its tenants' running migrations and their peaks", async () => {
    const shop = await nodesAs(SHOP_FILER);
    assert.equal(shop.scoped, true);
    const [seen] = shop.nodes as [NodeView];
    assert.equal(seen.name, 'alpha');
    assert.deepEqual(seen.capacity, { cpu: 4000, memory: parseQuantity('memory', '4Gi') }, 'the capacity is not a secret');
    assert.deepEqual(seen.running, { migrations: [ids.shop], peaks: { cpu: 500, memory: parseQuantity('memory', '256Mi') } });
    const blog = (await nodesAs(BLOG_FILER)).nodes[0] as NodeView;
    assert.deepEqual(blog.running, { migrations: [ids.blog], peaks: { cpu: 1500, memory: parseQuantity('memory', '1Gi') } });
  });

  void test("a migration's view names its tenant's node, and each attempt the node that ran it", async () => {
    const detail = await ferry.api('GET', `/v1/migrations/${ids.shop}`);
    assert.equal(detail.body.node, 'alpha');
    assert.deepEqual(
      detail.body.attempts.map((a: { node: string | null }) => a.node),
      ['alpha'],
    );
    const list = await ferry.api('GET', '/v1/migrations');
    assert.ok(list.body.length >= 2);
    for (const m of list.body) assert.equal(m.node, 'alpha', `${m.id} in the list`);
  });
});
