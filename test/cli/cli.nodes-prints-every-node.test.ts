/**
 * `ferry nodes` prints a table of the cluster's nodes (NAME STATE SUBSTRATE CAPACITY RUNNING
 * LAST-SEEN URL), quantities in their human form; `--json` prints the API's answer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { removeDir, startFerry, tempDir } from '../support/harness.ts';
import { assertExit, runCli } from './cli-process.ts';

void test('ferry nodes prints this node up with its substrate, capacity and address', async (t) => {
  const ferry = await startFerry({ node: 'alpha', capacity: { cpu: '1500m', memory: '2Gi' } });
  const cwd = tempDir('ferry-cli-');
  t.after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(cwd);
  });

  const r = await runCli(['--url', ferry.url, '--token', ferry.token, 'nodes'], { cwd });
  assertExit(r, 0);
  const [header, row, ...rest] = r.stdout.trimEnd().split('\n');
  assert.match(header ?? '', /^NAME\s+STATE\s+SUBSTRATE\s+CAPACITY\s+RUNNING\s+LAST-SEEN\s+URL$/);
  assert.deepEqual(rest, [], r.stdout);
  assert.match(row ?? '', /^alpha\s+up\s+process\s+cpu=1500m memory=2Gi\s+-\s+\d{4}-\d\d-\d\dT\S+Z\s+http:\/\/\S+$/, r.stdout);
  assert.ok(row?.endsWith(ferry.url), `the row ends with the node's address ${ferry.url}: ${row}`);

  const json = await runCli(['--url', ferry.url, '--token', ferry.token, '--json', 'nodes'], { cwd });
  assertExit(json, 0);
  const parsed = JSON.parse(json.stdout) as { nodes: Array<{ name: string; state: string; capacity: Record<string, number> }> };
  assert.deepEqual(
    parsed.nodes.map((n) => [n.name, n.state, n.capacity.cpu]),
    [['alpha', 'up', 1500]],
  );
});
