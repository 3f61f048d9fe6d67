/** `ferry ls` follows the API's cursor: every migration is listed, however many pages. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { removeDir, request, sh, startFerry } from '../support/harness.ts';
import { runCli } from './cli-process.ts';

void test('ferry ls lists every migration across pages, and refuses a bad --page-size', async (t) => {
  const ferry = await startFerry();
  t.after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });
  assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '500m', memory: '1Gi' } })).status, 201);
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }], { issue: `github:acme/platform#${i}` }));
    assert.equal(filed.status, 201);
    ids.push(filed.body.id);
  }
  const listed = await runCli(['--url', ferry.url, '--token', ferry.token, 'ls', '--page-size', '2', '--json'], { cwd: ferry.dataDir });
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual((JSON.parse(listed.stdout) as Array<{ id: string }>).map((m) => m.id).sort(), [...ids].sort());
  const bad = await runCli(['--url', ferry.url, '--token', ferry.token, 'ls', '--page-size', '0'], { cwd: ferry.dataDir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--page-size is a whole number from 1 to 500/);
});
