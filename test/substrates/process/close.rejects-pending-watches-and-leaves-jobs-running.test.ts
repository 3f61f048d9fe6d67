/** close() on shutdown: pending watches end at once with FERRY_INTERNAL "substrate closed"; jobs run on. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FerryError } from '../../../src/core/errors.ts';
import { isRunning, pidsOf, processKit } from './process-kit.ts';

void test('a pending watch rejects with substrate closed and the job keeps running', async () => {
  const kit = await processKit();
  try {
    const { spec, ref } = kit.step(['sleep', '1000']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const watched = kit.substrate.watch(ref, () => undefined);
    const rejected = assert.rejects(
      watched,
      (err: unknown) => err instanceof FerryError && err.code === 'FERRY_INTERNAL' && err.message === 'substrate closed',
    );
    await kit.substrate.close();
    await rejected;
    await assert.rejects(
      kit.substrate.watch(ref, () => undefined),
      /substrate closed/,
    );
    const { supervisor, job } = pidsOf(ref);
    assert.equal(isRunning(supervisor), true);
    assert.equal(isRunning(job), true);
  } finally {
    await kit.cleanup();
  }
});
