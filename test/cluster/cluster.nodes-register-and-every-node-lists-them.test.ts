/**
 * Three `ferry serve` nodes on one PostgreSQL database register themselves: every node's
 * `GET /v1/nodes` (a filer may read it) lists all three, up, with their API address, substrate and
 * capacity, nothing running, and a lease that is renewed while they live; `ferry nodes` prints the
 * same list.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseQuantity } from '../../src/core/quantity.ts';
import { runCli } from '../cli/cli-process.ts';
import { amount, clusterTest, nodesOf, type NodeView } from '../support/cluster.ts';
import { removeDir, tempDir, waitFor, writeTokensFile } from '../support/harness.ts';

const tokensDir = tempDir('ferry-cluster-tokens-');
const FILER = 'filer-token-0123456789abcdef0123456789';
const tokensFile = writeTokensFile(tokensDir, [{ name: 'reader', role: 'filer', token: FILER }]);
test.after(() => removeDir(tokensDir));

const CAPACITY: Record<string, { cpu: string; memory: string }> = {
  n1: { cpu: '2', memory: '2Gi' },
  n2: { cpu: '3', memory: '3Gi' },
  n3: { cpu: '1500m', memory: '1Gi' },
};

clusterTest(
  'three nodes register, every node lists all three as up with address, substrate, capacity and a renewed lease',
  {
    nodes: Object.entries(CAPACITY).map(([name, c]) => ({ name, args: ['--capacity-cpu', c.cpu, '--capacity-memory', c.memory] })),
    // A short lease (renewed every second) so that the test sees a renewal.
    lostAfter: '6s',
    env: { FERRY_TOKENS_FILE: tokensFile },
  },
  async (cluster) => {
    for (const via of cluster.nodes) {
      const res = await via.api<{ nodes: NodeView[] }>('GET', '/v1/nodes', undefined, { authorization: `Bearer ${FILER}` });
      assert.equal(res.status, 200, `a filer reads GET /v1/nodes on ${via.name}: ${JSON.stringify(res.body)}`);
      const nodes = res.body.nodes;
      assert.deepEqual(nodes.map((n) => n.name).sort(), ['n1', 'n2', 'n3'], `${via.name} lists every node once`);
      for (const n of nodes) {
        const me = cluster.node(n.name);
        assert.equal(n.state, 'up', `${n.name} is up (read through ${via.name})`);
        assert.equal(n.substrate, 'process');
        assert.ok(n.url, `${n.name} has an API address`);
        assert.equal(new URL(n.url).port, new URL(me.url).port, `${n.name}'s address is the one it listens on`);
        assert.equal(amount('cpu', n.capacity.cpu), parseQuantity('cpu', CAPACITY[n.name]!.cpu), `${n.name}'s cpu capacity`);
        assert.equal(amount('memory', n.capacity.memory), parseQuantity('memory', CAPACITY[n.name]!.memory), `${n.name}'s memory capacity`);
        assert.deepEqual(n.running.migrations, [], 'nothing runs yet');
        assert.ok(!Number.isNaN(Date.parse(n.lastSeenAt)), `lastSeenAt is a time: ${n.lastSeenAt}`);
        assert.ok(!Number.isNaN(Date.parse(n.startedAt)), `startedAt is a time: ${n.startedAt}`);
        assert.ok(Date.parse(n.startedAt) <= Date.parse(n.lastSeenAt), 'seen after it started');
      }
    }

    // The lease is renewed while the node lives: lastSeenAt moves on, as every node sees it.
    const first = (await nodesOf(cluster.node('n1'))).find((n) => n.name === 'n2')!;
    await waitFor(
      'n2 to renew its lease',
      async () => {
        const now = (await nodesOf(cluster.node('n3'))).find((n) => n.name === 'n2')!;
        return now.state === 'up' && Date.parse(now.lastSeenAt) > Date.parse(first.lastSeenAt);
      },
      20_000,
    );

    // `ferry nodes` prints every node with its state.
    const cwd = tempDir('ferry-cli-');
    try {
      const r = await runCli(['--url', cluster.node('n2').url, '--token', cluster.token, 'nodes'], { cwd });
      assert.equal(r.code, 0, `ferry nodes exits 0:\n${r.stdout}\n${r.stderr}`);
      for (const name of ['n1', 'n2', 'n3']) assert.match(r.stdout, new RegExp(`\\b${name}\\b.*\\bup\\b`), `ferry nodes shows ${name} up:\n${r.stdout}`);
      const json = await runCli(['--url', cluster.node('n3').url, '--token', cluster.token, '--json', 'nodes'], { cwd });
      assert.equal(json.code, 0, json.stderr);
      const parsed = JSON.parse(json.stdout) as { nodes?: NodeView[] } | NodeView[];
      const list = Array.isArray(parsed) ? parsed : (parsed.nodes ?? []);
      assert.deepEqual(list.map((n) => n.name).sort(), ['n1', 'n2', 'n3'], `ferry --json nodes lists the nodes:\n${json.stdout}`);
    } finally {
      removeDir(cwd);
    }
  },
);
