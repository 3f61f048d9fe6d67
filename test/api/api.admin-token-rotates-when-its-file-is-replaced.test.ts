/**
 * The admin token's digest lives in the store (so that it works on every node), and the node that
 * made it still rotates it as before: delete <data-dir>/token and restart, and a new token works and
 * the old one is refused.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { call, removeDir, startFerry, tempDir } from '../support/harness.ts';

void test('deleting the token file and restarting makes a new admin token and refuses the old one', async () => {
  const dataDir = tempDir('ferry-token-');
  try {
    const first = await startFerry({ dataDir });
    const old = first.token;
    assert.equal((await first.api('GET', '/v1/tenants')).status, 200);
    await first.stop();

    rmSync(join(dataDir, 'token'));
    const second = await startFerry({ dataDir });
    try {
      const fresh = readFileSync(join(dataDir, 'token'), 'utf8').trim();
      assert.notEqual(fresh, old);
      assert.equal((await call(second.url, fresh, 'GET', '/v1/tenants')).status, 200, 'the new token works');
      assert.equal((await call(second.url, old, 'GET', '/v1/tenants')).status, 401, 'the old token is refused');
    } finally {
      await second.stop();
    }
  } finally {
    removeDir(dataDir);
  }
});
