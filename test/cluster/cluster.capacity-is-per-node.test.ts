/**
 * Capacity is each node's own: on a node offering 1 cpu, two tenants' migrations of 800m each run
 * one after the other (the sum of running peaks never exceeds the node's capacity, as GET
 * /v1/nodes shows), while on a node offering 4 cpu two such migrations run at the same time.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, sh, waitFor } from '../support/harness.ts';
import {
  amount,
  approve,
  clusterTest,
  file,
  migration,
  nodesOf,
  pause,
  readIn,
  registerTenant,
  tenantDataDir,
  waitForState,
  type Cluster,
} from '../support/cluster.ts';

const PEAK = { cpu: '800m', memory: '256Mi' };
const WAIT_FOR_GO = sh(
  'touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done; echo done > "$FERRY_TENANT_DATA/done"',
);

async function runningOn(cluster: Cluster, node: string) {
  const view = (await nodesOf(cluster.node('n1'))).find((n) => n.name === node)!;
  return { migrations: view.running.migrations, cpu: amount('cpu', view.running.peaks.cpu), capacity: amount('cpu', view.capacity.cpu) };
}

clusterTest(
  'a node of 1 cpu runs two 800m migrations one after the other; a node of 4 cpu runs two at once',
  {
    nodes: [
      { name: 'n1', args: ['--capacity-cpu', '1', '--capacity-memory', '1Gi'] },
      { name: 'n2', args: ['--capacity-cpu', '4', '--capacity-memory', '4Gi'] },
    ],
  },
  async (cluster) => {
    const dirs: Record<string, string> = {};
    for (const [tenant, node] of [
      ['alpha', 'n1'],
      ['bravo', 'n1'],
      ['charlie', 'n2'],
      ['delta', 'n2'],
    ] as const) {
      dirs[tenant] = tenantDataDir(cluster, await registerTenant(cluster.node('n1'), tenant, { node }));
    }
    const ids: Record<string, string> = {};
    for (const tenant of Object.keys(dirs)) {
      ids[tenant] = await file(
        cluster.node('n1'),
        request(tenant, [{ name: 'work', run: WAIT_FOR_GO }], { peak: PEAK, issue: `github:acme/platform#${tenant.length}` }),
      );
    }
    for (const tenant of Object.keys(dirs)) await approve(cluster.node(tenant < 'c' ? 'n2' : 'n1'), ids[tenant]!);
    const started = (t: string) => readIn(dirs[t]!, 'started') !== null;

    // n2 (4 cpu): both of its tenants' jobs run at the same time.
    await waitFor('charlie and delta to run at once on n2', () => started('charlie') && started('delta'), 30_000);
    // n1 (1 cpu): one of alpha and bravo runs, the other waits.
    const first = await waitFor('one of alpha and bravo to start on n1', () => (started('alpha') ? 'alpha' : started('bravo') ? 'bravo' : null), 30_000);
    const second = first === 'alpha' ? 'bravo' : 'alpha';
    await pause(1500); // scheduling passes on every node: none may start the second on n1
    assert.equal(started(second), false, `${second} waits while ${first} runs on n1`);
    assert.equal((await migration(cluster.node('n2'), ids[second]!)).state, 'queued');
    const n1 = await runningOn(cluster, 'n1');
    assert.deepEqual(n1.migrations, [ids[first]], 'n1 runs one migration');
    assert.ok(n1.cpu <= n1.capacity, `n1's running peaks (${n1.cpu}m) fit its capacity (${n1.capacity}m)`);
    const n2 = await runningOn(cluster, 'n2');
    assert.deepEqual([...n2.migrations].sort(), [ids.charlie, ids.delta].sort(), 'n2 runs two migrations');
    assert.ok(n2.cpu <= n2.capacity);

    // The first ends: the second starts, on n1.
    writeFileSync(join(dirs[first]!, 'go'), '');
    await waitForState(cluster.node('n1'), ids[first]!, 'succeeded');
    await waitFor(`${second} to start once ${first} ended`, () => started(second), 30_000);
    const later = await runningOn(cluster, 'n1');
    assert.deepEqual(later.migrations, [ids[second]]);
    for (const t of [second, 'charlie', 'delta']) writeFileSync(join(dirs[t]!, 'go'), '');
    for (const t of Object.keys(dirs)) {
      const m = await waitForState(cluster.node('n1'), ids[t]!, 'succeeded');
      assert.equal(m.attempts[0]!.node, t < 'c' ? 'n1' : 'n2', `${t} ran on its tenant's node`);
      assert.equal(readIn(dirs[t]!, 'done'), 'done\n');
    }
  },
);
