/** The CLI reaches an embedded server from its data folder alone (<dataDir>/server-url and token), or from FERRY_URL/FERRY_TOKEN. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeDir, startFerry, tempDir, type Ferry } from '../support/harness.ts';
import { assertExit, closedPort, runCli } from './cli-process.ts';

void describe('CLI settings from the data folder', () => {
  let ferry: Ferry;
  let work: string;

  before(async () => {
    work = tempDir('ferry-cli-work-');
    ferry = await startFerry();
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(work);
  });

  void test('the service writes <dataDir>/server-url', () => {
    assert.equal(readFileSync(join(ferry.dataDir, 'server-url'), 'utf8').trim(), ferry.url);
  });

  void test('--data-dir alone finds the URL and the admin token', async () => {
    const r = await runCli(['--data-dir', ferry.dataDir, 'tenant', 'ls'], { cwd: work });
    assertExit(r, 0);
    assert.match(r.stdout, /^shop\s+cpu=1 memory=1Gi/m);
    // An admin-only command proves the token was the admin token from the folder.
    assertExit(await runCli(['--data-dir', ferry.dataDir, 'tenant', 'put', 'blog', '--cpu', '1', '--memory', '1Gi'], { cwd: work }), 0);
    assert.equal((await ferry.api('GET', '/v1/tenants/blog')).status, 200);
  });

  void test('FERRY_DATA_DIR works like --data-dir, and FERRY_URL with FERRY_TOKEN work without one', async () => {
    const results = await Promise.all([
      runCli(['tenant', 'ls'], { cwd: work, env: { FERRY_DATA_DIR: ferry.dataDir } }),
      runCli(['tenant', 'ls'], { cwd: work, env: { FERRY_URL: ferry.url, FERRY_TOKEN: ferry.token } }),
    ]);
    for (const r of results) {
      assertExit(r, 0);
      assert.match(r.stdout, /^shop\s/m);
    }
  });

  void test('a flag wins over the data folder: a wrong --token is refused', async () => {
    const r = await runCli(['--data-dir', ferry.dataDir, '--token', 'not-the-token-0123456789', 'tenant', 'ls'], { cwd: work });
    assertExit(r, 1);
    assert.match(r.stderr, /token/);
  });

  void test('an empty data folder finds no server and says how to start one', async () => {
    const empty = tempDir('ferry-cli-empty-');
    try {
      const r = await runCli(['--data-dir', empty, '--url', `http://127.0.0.1:${await closedPort()}`, 'ls'], { cwd: work });
      assertExit(r, 1);
      assert.match(r.stderr, /ferry serve|FERRY_URL/);
    } finally {
      removeDir(empty);
    }
  });
});
