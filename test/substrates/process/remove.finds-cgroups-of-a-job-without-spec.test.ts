/**
 * A job's cgroups are made before its spec.json is written; a crash in between recorded them
 * nowhere. remove('job') derives them from the ref, so they go anyway.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { processKit } from './process-kit.ts';

void test('remove(job) removes the job cgroups when spec.json is missing', async (t) => {
  const kit = await processKit();
  try {
    if (!kit.substrate.limits().enforced) return t.skip(`no writable cgroups here: ${kit.substrate.limits().detail}`);
    const { spec, ref } = kit.step(['sleep', '1000']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const dirs = (JSON.parse(readFileSync(join(ref, 'spec.json'), 'utf8')) as { cgroupDirs: string[] }).cgroupDirs;
    assert.ok(dirs.length > 0 && dirs.every((d) => existsSync(d)), `cgroups: ${dirs.join(', ')}`);
    rmSync(join(ref, 'spec.json'));
    await kit.substrate.remove('job', ref);
    assert.deepEqual(
      dirs.filter((d) => existsSync(d)),
      [],
    );
    assert.equal(existsSync(ref), false);
  } finally {
    await kit.cleanup();
  }
});
