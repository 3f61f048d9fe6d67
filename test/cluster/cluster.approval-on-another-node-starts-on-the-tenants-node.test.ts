/**
 * Placement: a migration filed through one node and approved through another runs on its tenant's
 * node, whichever node took the requests: the attempt records that node, the job's scratch and log
 * are in that node's data folder, and the job ran once.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request, sh } from '../support/harness.ts';
import { approve, clusterTest, file, readIn, registerTenant, tenantDataDir, waitForState } from '../support/cluster.ts';

clusterTest('filed through n1, approved through n3, it runs on n2 where its tenant lives', { nodes: 3 }, async (cluster) => {
  const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((n) => cluster.node(n));
  const shop = await registerTenant(n1!, 'shop', { node: 'n2' });
  assert.equal(shop.node, 'n2');
  const data = tenantDataDir(cluster, shop);

  const id = await file(
    n1!,
    request('shop', [
      {
        name: 'where',
        run: sh(
          'echo "$FERRY_SCRATCH" > "$FERRY_TENANT_DATA/where"; echo "$FERRY_TENANT_DATA" > "$FERRY_TENANT_DATA/data"; echo ran >> "$FERRY_TENANT_DATA/ledger"',
        ),
      },
      { name: 'again', run: sh('echo again >> "$FERRY_TENANT_DATA/ledger"') },
    ]),
  );
  const filed = (await n3!.api('GET', `/v1/migrations/${id}`)).body;
  assert.equal(filed.node, 'n2', 'the migration shows its tenant node from filing on, on every node');
  await approve(n3!, id);

  const done = await waitForState(n1!, id, 'succeeded');
  assert.equal(done.node, 'n2');
  assert.equal(done.attempts.length, 1);
  assert.equal(done.attempts[0]!.node, 'n2', 'the attempt was started by the tenant node');
  assert.equal(readIn(data, 'ledger'), 'ran\nagain\n', 'each step ran once');
  const where = (readIn(data, 'where') ?? '').trim();
  assert.ok(where.startsWith(`${n2!.dataDir}/`), `the job's scratch is in n2's data folder: ${where}`);
  assert.equal((readIn(data, 'data') ?? '').trim(), data, 'the job worked on the tenant data the API names');
  // Registered through n1 without a `data` folder: the default is on the tenant's node, n2.
  assert.ok(data.startsWith(`${n2!.dataDir}/`), `the tenant's data is in n2's data folder, not the registering node's: ${data}`);
  const logs = done.artifacts.filter((a) => a.kind === 'log');
  assert.ok(logs.length > 0, `a log artifact: ${JSON.stringify(done.artifacts)}`);
  for (const log of logs) {
    assert.ok(log.ref.startsWith(`${n2!.dataDir}/`), `the log is in n2's data folder: ${log.ref}`);
    assert.ok(existsSync(log.ref), `the log exists: ${log.ref}`);
  }

  // The log is served by every node, whichever holds it.
  for (const via of [n1!, n3!]) {
    const served = await via.api('GET', `/v1/migrations/${id}/logs?attempt=1`);
    assert.equal(served.status, 200, `${via.name} serves the log: ${JSON.stringify(served.body)}`);
  }
});
