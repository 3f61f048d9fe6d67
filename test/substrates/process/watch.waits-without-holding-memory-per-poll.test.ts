/**
 * A watch waits on its supervisor's exit and a timer, over and over, for as long as the job runs
 * (days). Each wait must leave nothing behind on the long-lived exit source: racing the exit
 * promise against a fresh sleep kept a reaction per poll (~312 B) until the job ended.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SupervisorHandle, WakeUp } from '../../../src/substrates/process/supervisor-handle.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function polls(wakeUp: WakeUp, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const waited = wakeUp.wait(60_000);
    wakeUp.wake();
    await waited;
  }
}

void test('50,000 waits on one running supervisor hold no memory per wait', async () => {
  const handle = new SupervisorHandle();
  const wakeUp = new WakeUp();
  handle.onChange(wakeUp.wake);
  await polls(wakeUp, 1000);
  gc();
  const before = process.memoryUsage().heapUsed;
  await polls(wakeUp, 50_000);
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  // 50,000 kept reactions would be ~15 MB.
  assert.ok(grown < 2 * 1024 * 1024, `heap grew by ${grown} bytes`);
});

void test('the supervisor ending wakes the pending wait, and a wake between waits is not lost', async () => {
  const handle = new SupervisorHandle();
  const wakeUp = new WakeUp();
  handle.onChange(wakeUp.wake);
  const waited = wakeUp.wait(60_000);
  handle.settle('exited');
  await waited;
  assert.equal(handle.state, 'exited');
  wakeUp.wake();
  await wakeUp.wait(60_000); // returns at once: the wake came while nobody waited
});
