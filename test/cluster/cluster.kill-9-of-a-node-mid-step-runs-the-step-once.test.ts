/**
 * kill -9 of a node while its job runs, and a restart before anyone considers it lost: the job
 * keeps running without its node, the other nodes record nothing for it (only its node does), and
 * the restarted node re-attaches, records the outcome and goes on; every step ran exactly once.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, sh, waitFor } from '../support/harness.ts';
import { approve, clusterTest, file, migration, pause, readIn, registerTenant, supervisorsUnder, tenantDataDir, waitForState } from '../support/cluster.ts';

const BLOCK = 'touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done';

clusterTest('the step finishes while its node is down; the restarted node records it and runs the next step once', { nodes: 2 }, async (cluster) => {
  const n2 = cluster.node('n2');
  const data = tenantDataDir(cluster, await registerTenant(cluster.node('n1'), 'shop', { node: 'n2' }));
  const id = await file(
    cluster.node('n1'),
    request('shop', [
      { name: 'one', run: sh(`echo one >> "$FERRY_TENANT_DATA/ledger"; ${BLOCK}`) },
      { name: 'two', run: sh('echo two >> "$FERRY_TENANT_DATA/ledger"') },
    ]),
  );
  await approve(cluster.node('n1'), id);
  await waitFor('step one to start on n2', () => readIn(data, 'started') !== null);

  await n2.kill('SIGKILL');
  writeFileSync(join(data, 'go'), '');
  await waitFor('step one to end while n2 is down', () => supervisorsUnder(n2.dataDir).length === 0);
  await pause(1000); // the other nodes' passes: none may record or start anything for n2's job
  const meanwhile = await migration(cluster.node('n1'), id);
  assert.equal(meanwhile.state, 'running', 'only n2 records its job');
  assert.equal(readIn(data, 'ledger'), 'one\n', 'step two does not start while n2 is down');

  await n2.restart();
  const done = await waitForState(cluster.node('n1'), id, 'succeeded');
  assert.equal(readIn(data, 'ledger'), 'one\ntwo\n', 'each step ran exactly once');
  assert.equal(done.attempts.length, 1, 'no new attempt');
  assert.equal(done.attempts[0]!.node, 'n2');
  assert.equal(done.events.filter((e) => e.kind === 'start').length, 1);
  assert.equal(done.events.filter((e) => e.kind === 'succeed').length, 1, 'the outcome is recorded once');
  assert.equal(done.events.filter((e) => e.kind === 'fail').length, 0);
});

clusterTest('a node killed while its step runs re-attaches on restart and records the real outcome', { nodes: 2 }, async (cluster) => {
  const n2 = cluster.node('n2');
  const data = tenantDataDir(cluster, await registerTenant(cluster.node('n1'), 'shop', { node: 'n2' }));
  const id = await file(cluster.node('n1'), request('shop', [{ name: 'long', run: sh(`echo run >> "$FERRY_TENANT_DATA/ledger"; ${BLOCK}; exit 3`) }]));
  await approve(cluster.node('n1'), id);
  await waitFor('the step to start on n2', () => readIn(data, 'started') !== null);

  await n2.kill('SIGKILL');
  await n2.restart();
  assert.equal((await migration(cluster.node('n1'), id)).state, 'running', 're-attached, still running');
  writeFileSync(join(data, 'go'), '');
  const held = await waitForState(cluster.node('n1'), id, 'held');
  assert.equal(held.heldCause, 'exit-code');
  assert.equal(held.attempts.length, 1);
  assert.equal(held.attempts[0]!.exitCode, 3);
  assert.equal(held.events.filter((e) => e.kind === 'fail').length, 1);
  assert.equal(readIn(data, 'ledger'), 'run\n', 'never re-run');
});
