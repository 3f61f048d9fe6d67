import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { FerryError } from '../../../src/core/errors.ts';
import { TEST_IMAGE, usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();

void test('remove() of job, scratch, snapshot and log succeeds twice and leaves the tenant data alone', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const before = await env.volumeContent(tenant.data);
  const spec = env.spec(tenant, { argv: ['sh', '-c', 'echo done > "$FERRY_SCRATCH/out"; echo logged'] });
  await env.prepare(spec);
  const snap = env.substrate.snapshotRef(spec.migrationId);
  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  await watchLines(env.substrate, ref);
  assert.ok(existsSync(spec.logPath));

  for (let round = 0; round < 2; round++) {
    await env.substrate.remove('job', ref);
    await env.substrate.remove('scratch', spec.scratchRef);
    await env.substrate.remove('snapshot', snap);
    await env.substrate.remove('log', spec.logPath);
  }
  await assert.rejects(env.docker.getContainer(ref).inspect());
  await assert.rejects(env.docker.getVolume(spec.scratchRef).inspect());
  await assert.rejects(env.docker.getVolume(snap).inspect());
  assert.equal(existsSync(spec.logPath), false);
  assert.equal(await env.substrate.tenantDataExists(tenant), true);
  assert.equal(await env.volumeContent(tenant.data), before);
});

void test('remove() refuses containers and volumes without Ferry labels, the tenant volume included', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const before = await env.volumeContent(tenant.data);
  const name = `ferry-test-foreign-${Date.now()}`;
  const foreign = await env.docker.createContainer({ name, Image: TEST_IMAGE, Cmd: ['true'], Labels: { app: 'not-ferry' } });
  try {
    for (const kind of ['scratch', 'snapshot'] as const) {
      await assert.rejects(
        env.substrate.remove(kind, tenant.data),
        (err: unknown) => err instanceof FerryError && err.code === 'FERRY_CONFLICT' && /never tenant data/.test(err.message),
      );
    }
    await assert.rejects(env.substrate.remove('job', name), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_CONFLICT');
    // A scratch volume is not removable as a snapshot either.
    const migrationId = env.newMigrationId();
    const scratch = env.substrate.scratchRef(migrationId);
    await env.substrate.createScratch(scratch, { migrationId, issue: 'github:acme/platform#9', tenant });
    await assert.rejects(env.substrate.remove('snapshot', scratch), /carries ferry.role=scratch/);
    await env.substrate.remove('scratch', scratch);

    assert.equal((await env.docker.getContainer(name).inspect()).Name.replace(/^\//, ''), name, 'the foreign container is still there');
    assert.equal(await env.volumeContent(tenant.data), before, 'the tenant volume is untouched');
  } finally {
    await foreign.remove({ force: true });
  }
});
