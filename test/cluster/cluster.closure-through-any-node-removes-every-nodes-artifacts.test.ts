/**
 * Closing an issue through any node tears down its migrations on every node: a running job on
 * another node is stopped and its migration cancelled, and each node removes its own artifacts
 * (logs, scratch, snapshots, jobs) while the tenant data stays. Artifacts on a node that is down
 * are `pending` in the closure's answer, the closure does not wait for it, and the node removes
 * them when it returns.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request, sh, waitFor } from '../support/harness.ts';
import {
  approve,
  clusterTest,
  file,
  migration,
  readIn,
  registerTenant,
  supervisorsUnder,
  tenantDataDir,
  waitForState,
  type ArtifactView,
  type ClusterNode,
} from '../support/cluster.ts';

interface Closure {
  issue: string;
  cancelled: string[];
  removed: Array<{ migrationId: string; kind: string; ref: string }>;
  pending: Array<{ migrationId: string; kind: string; ref: string; error: string }>;
}

const close = (via: ClusterNode, issue: string) => via.api<Closure>('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});

/** Refs that are paths on this host (process substrate: logs, scratch, snapshots, step folders). */
const paths = (artifacts: ArtifactView[]) => artifacts.map((a) => a.ref).filter((r) => r.startsWith('/'));

async function allRemoved(via: ClusterNode, id: string): Promise<boolean> {
  const m = await migration(via, id);
  return m.artifacts.length > 0 && m.artifacts.every((a) => a.state === 'removed') && paths(m.artifacts).every((p) => !existsSync(p));
}

clusterTest('closing through n1 cancels a job running on n3 and each node removes its own artifacts', { nodes: 3 }, async (cluster) => {
  const [n1, n2, n3] = (['n1', 'n2', 'n3'] as const).map((n) => cluster.node(n)) as [ClusterNode, ClusterNode, ClusterNode];
  const shopData = tenantDataDir(cluster, await registerTenant(n1, 'shop', { node: 'n2' }));
  const mallData = tenantDataDir(cluster, await registerTenant(n1, 'mall', { node: 'n3' }));
  const issue = 'github:acme/platform#41';
  const done = await file(n1, request('shop', [{ name: 'write', run: sh('echo kept > "$FERRY_TENANT_DATA/kept"; echo log line') }], { issue }));
  const running = await file(
    n2,
    request('mall', [{ name: 'forever', run: sh('touch "$FERRY_TENANT_DATA/started"; while true; do sleep 0.05; done') }], { issue }),
  );
  await approve(n3, done);
  await approve(n1, running);
  const finished = await waitForState(n1, done, 'succeeded');
  await waitFor('the job on n3 to run', () => readIn(mallData, 'started') !== null);
  const shopPaths = paths(finished.artifacts);
  assert.ok(
    shopPaths.some((p) => p.startsWith(`${n2.dataDir}/`) && existsSync(p)),
    `n2 holds the shop migration's files: ${shopPaths.join(', ')}`,
  );
  const mallPaths = paths((await migration(n1, running)).artifacts);
  assert.ok(
    mallPaths.some((p) => p.startsWith(`${n3.dataDir}/`) && existsSync(p)),
    `n3 holds the mall migration's files: ${mallPaths.join(', ')}`,
  );

  const closed = await close(n1, issue);
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  // The answering node cancels what it can; the job on n3 is stopped (and cancelled) by n3 itself.
  await waitForState(n2, running, 'cancelled');
  await waitFor('n3 to stop its job', () => supervisorsUnder(n3.dataDir).length === 0);
  await waitFor('every artifact on n2 and n3 to be removed', async () => (await allRemoved(n1, done)) && (await allRemoved(n1, running)), 30_000);
  for (const p of [...shopPaths, ...mallPaths]) assert.equal(existsSync(p), false, `${p} is gone`);
  assert.equal(readIn(shopData, 'kept'), 'kept\n', 'tenant data is never an artifact');
  assert.equal((await migration(n3, done)).state, 'succeeded', 'a finished migration stays as it ended');
});

clusterTest('artifacts of a node that is down are pending in the answer and removed when it returns', { nodes: 3 }, async (cluster) => {
  const [n1, n2, n3] = (['n1', 'n2', 'n3'] as const).map((n) => cluster.node(n)) as [ClusterNode, ClusterNode, ClusterNode];
  await registerTenant(n1, 'shop', { node: 'n2' });
  const issue = 'github:acme/platform#42';
  const id = await file(n1, request('shop', [{ name: 'hello', run: sh('echo hello') }], { issue }));
  await approve(n1, id);
  const finished = await waitForState(n3, id, 'succeeded');
  const files = paths(finished.artifacts);
  const log = finished.artifacts.find((a) => a.kind === 'log');
  assert.ok(log && log.ref.startsWith(`${n2.dataDir}/`) && existsSync(log.ref), `the log is on n2: ${JSON.stringify(finished.artifacts)}`);

  await n2.kill('SIGTERM');
  const closed = await close(n3, issue);
  assert.equal(closed.status, 200, `the closure answers without n2: ${JSON.stringify(closed.body)}`);
  const pending = closed.body.pending.filter((p) => p.migrationId === id);
  assert.ok(
    pending.some((p) => p.kind === 'log' && p.ref === log.ref),
    `n2's log is pending in the answer: ${JSON.stringify(closed.body)}`,
  );
  assert.equal(closed.body.removed.filter((r) => r.migrationId === id).length, 0, 'nobody else removes n2 artifacts');
  assert.ok(existsSync(log.ref), 'the log stays while n2 is down');

  await n2.restart();
  await waitFor('n2 to remove its artifacts on its return', () => allRemoved(n1, id), 30_000);
  for (const p of files) assert.equal(existsSync(p), false, `${p} is gone`);
});
