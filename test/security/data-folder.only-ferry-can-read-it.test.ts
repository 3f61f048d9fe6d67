/**
 * Ferry's data folder holds the store, the admin token and every job's log. A folder left loose by
 * an older Ferry or by hand is tightened on start, and another local user can read none of it
 * (checked as that user, with setpriv).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, startFerry, tempDir } from '../support/harness.ts';

const NOBODY = 65534;

function readAs(uid: number, path: string): { status: number | null; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'cat', path], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

void test('a loose data folder is tightened on start and another user reads neither the store nor the token', async (t) => {
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true') assert.fail('this test runs as root in CI (it switches to another user)');
    t.skip('NOT RUN: needs root to read files as another user');
    return;
  }
  const parent = tempDir('ferry-modes-');
  chmodSync(parent, 0o755);
  const dataDir = join(parent, 'data');
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  writeFileSync(join(dataDir, 'token'), 'an-old-token-left-readable-by-everyone\n', { mode: 0o644 });
  chmodSync(join(dataDir, 'token'), 0o644);
  const f = await startFerry({ dataDir });
  t.after(async () => {
    await f.stop();
    removeDir(parent);
  });
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  for (const name of ['ferry.db', 'token', 'server-url']) assert.equal(statSync(join(dataDir, name)).mode & 0o077, 0, `${name} is private`);
  for (const name of ['ferry.db', 'token', 'logs']) {
    const r = readAs(NOBODY, join(dataDir, name));
    assert.notEqual(r.status, 0, `uid ${NOBODY} must not read ${name}`);
    assert.match(r.stderr, /Permission denied/);
  }
  // The check itself can succeed: the same user reads a file that is meant to be readable.
  writeFileSync(join(parent, 'public'), 'ok', { mode: 0o644 });
  assert.equal(readAs(NOBODY, join(parent, 'public')).status, 0);
});
