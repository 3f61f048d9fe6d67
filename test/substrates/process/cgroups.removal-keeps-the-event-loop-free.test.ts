/** Removing a cgroup that is still busy retries for about a second: other work must go on meanwhile. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeCgroups } from '../../../src/substrates/process/cgroups.ts';
import { removeDir, tempDir } from '../../support/harness.ts';

void test('while a directory cannot be removed yet, the event loop keeps turning', async () => {
  // A folder that rmdir refuses (ENOTEMPTY) stands in for a cgroup whose processes are still dying.
  const dir = tempDir('ferry-busy-cgroup-');
  writeFileSync(join(dir, 'cgroup.procs'), '');
  let turns = 0;
  let done = false;
  const turn = (): void => {
    turns++;
    if (!done) setImmediate(turn);
  };
  setImmediate(turn);
  try {
    await removeCgroups([dir]);
    done = true;
    assert.ok(turns > 1, `the event loop turned ${turns} times while removeCgroups retried`);
  } finally {
    done = true;
    removeDir(dir);
  }
});
