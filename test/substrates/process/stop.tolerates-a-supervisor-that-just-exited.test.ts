/**
 * A supervisor can exit between the liveness check and the signal: process.kill then throws ESRCH,
 * which stop() and remove() must take as "already gone".
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { pidsOf, processKit } from './process-kit.ts';

void test('stop() and remove() succeed when the supervisor vanishes right before the signal', async () => {
  const kit = await processKit();
  const realKill = process.kill.bind(process);
  try {
    const { spec, ref } = kit.step(['sleep', '1000']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const { supervisor } = pidsOf(ref);
    const kill = mock.method(process, 'kill', (pid: number, sig?: string | number) => {
      if (pid === supervisor) throw Object.assign(new Error(`kill ESRCH`), { code: 'ESRCH', errno: -3, syscall: 'kill' });
      return realKill(pid, sig);
    });
    try {
      await kit.substrate.stop(ref);
      assert.ok(
        kill.mock.calls.some((c) => c.arguments[0] === supervisor),
        'stop() did not signal the supervisor',
      );
      kill.mock.resetCalls();
      await kit.substrate.remove('job', ref);
      assert.ok(
        kill.mock.calls.some((c) => c.arguments[0] === supervisor),
        'remove() did not signal the supervisor',
      );
    } finally {
      kill.mock.restore();
    }
  } finally {
    await kit.cleanup();
  }
});
