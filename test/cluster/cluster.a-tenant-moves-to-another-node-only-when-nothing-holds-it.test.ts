/**
 * A tenant lives on one node: moving it to another node (`PUT /v1/tenants/:id` with `node`) is
 * refused while a migration holds it, and allowed once nothing does; its next migration then runs
 * on the new node. A node that does not exist is refused.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, sh, waitFor } from '../support/harness.ts';
import { approve, clusterTest, file, readIn, registerTenant, tenantDataDir, waitForState } from '../support/cluster.ts';

const STEADY = { cpu: '1', memory: '512Mi' };

clusterTest('a tenant moves only while nothing holds it, and then runs on its new node', { nodes: 2 }, async (cluster) => {
  const [n1, n2] = [cluster.node('n1'), cluster.node('n2')];
  const shop = await registerTenant(n1, 'shop');
  assert.equal(shop.node, 'n1');
  const data = tenantDataDir(cluster, shop);

  const nowhere = await n2.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, node: 'n9' });
  assert.ok(nowhere.status >= 400 && nowhere.status < 500, `a node that does not exist is refused: ${nowhere.status} ${JSON.stringify(nowhere.body)}`);

  const first = await file(
    n2,
    request('shop', [{ name: 'block', run: sh('touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done') }]),
  );
  await approve(n2, first);
  await waitFor('the job to start on n1', () => readIn(data, 'started') !== null);
  const busy = await n2.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, node: 'n2' });
  assert.equal(busy.status, 409, `moving a held tenant is refused: ${JSON.stringify(busy.body)}`);
  assert.equal((await n1.api('GET', '/v1/tenants/shop')).body.node, 'n1', 'it stays where it was');

  writeFileSync(join(data, 'go'), '');
  const done = await waitForState(n2, first, 'succeeded');
  assert.equal(done.attempts[0]!.node, 'n1');

  const moved = await n2.api('PUT', '/v1/tenants/shop', { steadyState: STEADY, node: 'n2' });
  assert.equal(moved.status, 200, `moving a free tenant: ${JSON.stringify(moved.body)}`);
  assert.equal(moved.body.node, 'n2');
  const next = await file(
    n1,
    request('shop', [{ name: 'here', run: sh('echo "$FERRY_SCRATCH" > "$FERRY_TENANT_DATA/where"') }], { issue: 'github:acme/platform#2' }),
  );
  await approve(n1, next);
  const ran = await waitForState(n1, next, 'succeeded');
  assert.equal(ran.attempts[0]!.node, 'n2', 'the next migration runs on the new node');
  const movedData = tenantDataDir(cluster, moved.body);
  const where = (readIn(movedData, 'where') ?? '').trim();
  assert.ok(where.startsWith(`${n2.dataDir}/`), `its scratch is on n2: ${where}`);
});
