/**
 * One holder per tenant across the cluster: three migrations of one tenant, filed and approved at
 * once through three different nodes, all run on the tenant's node one after the other. Each step
 * writes its start and end time (the host clock, shared by every job here) into the tenant data;
 * no two migrations' intervals overlap.
 */
import assert from 'node:assert/strict';
import { request, sh } from '../support/harness.ts';
import { approve, clusterTest, file, readIn, registerTenant, tenantDataDir, waitForState } from '../support/cluster.ts';

const STEP = sh(
  'echo "start $FERRY_MIGRATION_ID $(date +%s%N)" >> "$FERRY_TENANT_DATA/times"; sleep 0.3; echo "end $FERRY_MIGRATION_ID $(date +%s%N)" >> "$FERRY_TENANT_DATA/times"',
);

clusterTest('migrations of one tenant approved through three nodes at once run one at a time on its node', { nodes: 3 }, async (cluster) => {
  const shop = await registerTenant(cluster.node('n1'), 'shop');
  const data = tenantDataDir(cluster, shop);
  const ids = await Promise.all(
    cluster.nodes.map((via, i) =>
      file(
        via,
        request(
          'shop',
          [
            { name: 'first', run: STEP },
            { name: 'second', run: STEP },
          ],
          { issue: `github:acme/platform#${10 + i}` },
        ),
      ),
    ),
  );
  // All approvals at once, each through another node.
  await Promise.all(ids.map((id, i) => approve(cluster.nodes[(i + 1) % cluster.nodes.length]!, id)));
  for (const id of ids) {
    const m = await waitForState(cluster.node('n2'), id, 'succeeded', 60_000);
    assert.equal(m.attempts.length, 1, `${id}: one attempt`);
    assert.equal(m.attempts[0]!.node, 'n1', `${id} ran on the tenant's node`);
  }

  const lines = (readIn(data, 'times') ?? '').trim().split('\n');
  assert.equal(lines.length, ids.length * 4, `two steps, a start and an end each:\n${lines.join('\n')}`);
  const spans = ids.map((id) => {
    const mine = lines.filter((l) => l.split(' ')[1] === id).map((l) => BigInt(l.split(' ')[2]!));
    return { id, from: mine.reduce((a, b) => (a < b ? a : b)), to: mine.reduce((a, b) => (a > b ? a : b)) };
  });
  spans.sort((a, b) => (a.from < b.from ? -1 : 1));
  for (let i = 1; i < spans.length; i++) {
    assert.ok(spans[i - 1]!.to < spans[i]!.from, `${spans[i - 1]!.id} ended before ${spans[i]!.id} started:\n${lines.join('\n')}`);
  }
});
