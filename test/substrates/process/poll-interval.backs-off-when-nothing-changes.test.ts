/** A re-attached job is looked at soon after a change and about once a second while it is quiet. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextPollMs } from '../../../src/substrates/process/poll-interval.ts';

const intervals = { pollMs: 100, idleMs: 1000 };

void test('the wait doubles while nothing changes, up to 1 s, and drops back to pollMs on output', () => {
  const seen: number[] = [];
  let ms = 5;
  for (let i = 0; i < 12; i++) seen.push((ms = nextPollMs(ms, false, intervals)));
  assert.deepEqual(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000, 1000]);
  assert.equal(nextPollMs(1000, true, intervals), 100);
  assert.equal(nextPollMs(100, false, intervals), 200);
});
