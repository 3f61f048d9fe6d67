/**
 * Node identity: a second live process claiming a node name that is up refuses to start and says
 * why, leaving the first one as it was; a clean stop (SIGTERM) marks the node `left` for the
 * others, and starting it again on its data folder brings it back `up`.
 */
import assert from 'node:assert/strict';
import { clusterTest, nodesOf, waitForNodeState } from '../support/cluster.ts';

clusterTest('a second process with the name of a live node exits non-zero saying the node is already running', { nodes: 2 }, async (cluster) => {
  const before = (await nodesOf(cluster.node('n1'))).find((n) => n.name === 'n2')!;
  const second = await cluster.startExpectingExit({ name: 'n2' });
  assert.notEqual(second.code, 0, `the second n2 exits non-zero (${second.code ?? second.signal}):\n${second.output}`);
  assert.match(second.output, /already running/i, `it says the node is already running:\n${second.output}`);
  assert.match(second.output, /\bn2\b/, `it names the node:\n${second.output}`);

  // The first n2 is untouched: still up, same start, still answering.
  assert.equal(cluster.node('n2').running, true);
  assert.equal((await cluster.node('n2').api('GET', '/v1/nodes')).status, 200);
  const nodes = await nodesOf(cluster.node('n1'));
  assert.deepEqual(nodes.map((n) => n.name).sort(), ['n1', 'n2']);
  const after = nodes.find((n) => n.name === 'n2')!;
  assert.equal(after.state, 'up');
  assert.equal(after.startedAt, before.startedAt, 'the refused process did not take the node over');
  assert.equal(new URL(after.url!).port, new URL(cluster.node('n2').url).port, 'the address is still the first process');
});

clusterTest('a clean stop marks the node left; started again it is up', { nodes: 2 }, async (cluster) => {
  const n2 = cluster.node('n2');
  const exit = await n2.kill('SIGTERM');
  assert.equal(exit.code, 0, `a clean stop exits 0 (${exit.code ?? exit.signal})`);
  await waitForNodeState(cluster.node('n1'), 'n2', 'left', 10_000);
  assert.equal((await nodesOf(cluster.node('n1'))).find((n) => n.name === 'n1')!.state, 'up', 'the other stays up');

  await n2.restart();
  const back = await waitForNodeState(cluster.node('n1'), 'n2', 'up', 10_000);
  assert.equal(new URL(back.url!).port, new URL(n2.url).port, 'with its new address');
});
