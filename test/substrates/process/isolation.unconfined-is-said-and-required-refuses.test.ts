/**
 * Where jobs cannot be confined (isolation off, or Ferry not root), they still run, and
 * isolation() says so and what a job can then see; with isolation `required`, Ferry refuses to start.
 * The environment is the job's own either way: nothing of the server's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { FerryError } from '../../../src/core/errors.ts';
import { ProcessSubstrate } from '../../../src/substrates/process/process-substrate.ts';
import { removeDir, tempDir } from '../../support/harness.ts';
import { processKit } from './process-kit.ts';

void test('isolation off: said, with what a job sees; the job runs as Ferry and still gets only its own environment', { timeout: 30_000 }, async () => {
  const secretName = 'FERRY_TEST_SERVER_SECRET';
  process.env[secretName] = 'must-not-reach-a-job';
  const kit = await processKit({ isolation: 'off' });
  try {
    const isolation = kit.substrate.isolation();
    assert.equal(isolation.isolated, false);
    assert.match(isolation.detail, /turned off by configuration/);
    assert.match(isolation.detail, /Ferry's data folder \(its token and its store\)/);
    const { spec, ref } = kit.step(['sh', '-c', 'id -u > "$FERRY_SCRATCH/uid"; env > "$FERRY_SCRATCH/env"'], { env: { FROM_REQUEST: 'yes' } });
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    assert.equal((await kit.substrate.watch(ref, () => undefined)).cause, null);
    assert.equal(readFileSync(join(spec.scratchRef, 'uid'), 'utf8').trim(), String(process.geteuid?.()));
    const env = readFileSync(join(spec.scratchRef, 'env'), 'utf8');
    assert.doesNotMatch(env, new RegExp(secretName));
    assert.match(env, /^FROM_REQUEST=yes$/m);
    assert.match(env, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.match(env, new RegExp(`^HOME=${spec.scratchRef}$`, 'm'));
    assert.match(env, new RegExp(`^FERRY_SCRATCH=${spec.scratchRef}$`, 'm'));
  } finally {
    delete process.env[secretName];
    await kit.cleanup();
  }
});

void test('a request that sets PATH and HOME keeps them', { timeout: 30_000 }, async () => {
  const kit = await processKit();
  try {
    const { spec, ref } = kit.step(['/bin/sh', '-c', 'echo "$PATH $HOME" > "$FERRY_SCRATCH/env"'], { env: { PATH: '/bin', HOME: '/tmp' } });
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    assert.equal((await kit.substrate.watch(ref, () => undefined)).cause, null);
    assert.equal(readFileSync(join(spec.scratchRef, 'env'), 'utf8'), '/bin /tmp\n');
  } finally {
    await kit.cleanup();
  }
});

void test('Ferry not root: unconfined and said why; with isolation required, init refuses and says what to do', async () => {
  // Ferry's own check, as a user other than root would see it.
  const geteuid = mock.method(process as { geteuid: () => number }, 'geteuid', () => 1000);
  const dirs = [tempDir('ferry-unprivileged-'), tempDir('ferry-unprivileged-')];
  const [autoDir = '', requiredDir = ''] = dirs;
  try {
    const auto = new ProcessSubstrate({ dataDir: autoDir, spawnerPath: null });
    await auto.init();
    assert.equal(auto.isolation().isolated, false);
    assert.match(auto.isolation().detail, /does not run as root \(uid 1000\)/);
    assert.match(auto.isolation().detail, /every tenant's data/);
    assert.match(auto.isolation().detail, /user namespaces, without root, is not implemented/);
    await auto.close();

    const required = new ProcessSubstrate({ dataDir: requiredDir, spawnerPath: null, isolation: 'required' });
    await assert.rejects(required.init(), (err: unknown) => {
      assert.ok(err instanceof FerryError);
      assert.equal(err.code, 'FERRY_CANNOT_CONFINE');
      assert.match(err.message, /isolation is required but jobs cannot be confined here/);
      assert.match(err.message, /run Ferry as root .* or set isolation to auto/);
      return true;
    });
    await required.close();
  } finally {
    geteuid.mock.restore();
    for (const dir of dirs) removeDir(dir);
  }
});

void test('confined, isolation() says so, and the enforced dimensions follow the cgroups', { timeout: 30_000 }, async (t) => {
  if (process.geteuid?.() !== 0) return t.skip('only root confines jobs');
  const confined = await processKit();
  const noLimits = await processKit({ cgroups: 'off' });
  try {
    assert.equal(confined.substrate.isolation().isolated, true, confined.substrate.isolation().detail);
    assert.match(confined.substrate.isolation().detail, /mount, PID, IPC and UTS namespaces/);
    if (confined.substrate.limits().enforced)
      assert.deepEqual(
        confined.substrate.enforcedDimensions().filter((d) => d !== 'pids'),
        ['memory', 'cpu'],
      );
    assert.deepEqual(noLimits.substrate.enforcedDimensions(), []);
  } finally {
    await confined.cleanup();
    await noLimits.cleanup();
  }
});
