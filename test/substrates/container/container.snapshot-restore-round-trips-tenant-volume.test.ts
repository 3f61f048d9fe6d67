import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();

void test('snapshot then restore gives the tenant volume back exactly, dotfiles included', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const before = await env.volumeContent(tenant.data);
  const spec = env.spec(tenant, {
    argv: ['sh', '-c', 'rm "$FERRY_TENANT_DATA/a.txt" "$FERRY_TENANT_DATA/.dot" && echo half > "$FERRY_TENANT_DATA/new.txt" && echo changed > "$FERRY_TENANT_DATA/sub/b.txt"'],
  });
  const snap = env.substrate.snapshotRef(spec.migrationId);
  assert.equal(snap, `ferry-snapshot-${spec.migrationId}`);

  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  assert.equal(await env.volumeContent(snap), before, 'the snapshot holds the tenant data');
  const snapInfo = await env.docker.getVolume(snap).inspect();
  assert.deepEqual(snapInfo.Labels, { 'ferry.role': 'snapshot', 'ferry.migration': spec.migrationId, 'ferry.issue': spec.issue, 'ferry.tenant': tenant.id });

  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  assert.equal((await watchLines(env.substrate, ref)).result.cause, null);
  assert.notEqual(await env.volumeContent(tenant.data), before, 'the job changed the tenant data');

  await env.substrate.restore(tenant, snap);
  assert.equal(await env.volumeContent(tenant.data), before, 'restore replaced the tenant data with the snapshot');

  // A snapshot retried after a crash holds one copy, not two.
  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  assert.equal(await env.volumeContent(snap), before);

  const helpers = await env.docker.listContainers({ all: true, filters: { label: ['ferry.role=snapshot-helper'] } });
  assert.deepEqual(helpers.filter((c) => c.Labels['ferry.migration'] === spec.migrationId), [], 'copy helpers are removed after use');

  await env.cleanup(spec, ref);
  await env.substrate.remove('snapshot', snap);
  assert.equal(await env.volumeContent(tenant.data), before, 'removing the artifacts left the tenant data alone');
});

void test('restore from a missing or foreign snapshot is refused and leaves the tenant data as it is', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const other = await env.tenant();
  const before = await env.volumeContent(tenant.data);
  const migrationId = env.newMigrationId();
  await assert.rejects(env.substrate.restore(tenant, env.substrate.snapshotRef(migrationId)), /does not exist; the tenant's data was left as it is/);

  const snap = env.substrate.snapshotRef(migrationId);
  await env.substrate.snapshot(other, snap, { migrationId, issue: 'github:acme/platform#1' });
  await assert.rejects(env.substrate.restore(tenant, snap), /not a Ferry snapshot of that tenant/);
  await assert.rejects(env.substrate.restore(tenant, other.data), /not a Ferry snapshot/);
  assert.equal(await env.volumeContent(tenant.data), before);
  await env.substrate.remove('snapshot', snap);
});
