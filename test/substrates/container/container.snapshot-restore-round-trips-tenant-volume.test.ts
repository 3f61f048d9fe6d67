import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();

void test('snapshot then restore gives the tenant volume back exactly, dotfiles, owners and modes included', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  // Besides the tenant's own files (handed over to its uid), one that is another uid's and
  // unreadable to others: the helpers must copy it back as it was.
  await env.asRoot(
    tenant.data,
    'mkdir /v/locked && echo secret > /v/locked/f && chmod 0600 /v/locked/f && chmod 0700 /v/locked && chown -R 4242:4343 /v/locked && chmod 0750 /v/sub',
  );
  const before = await env.volumeContent(tenant.data);
  const ownersBefore = await env.volumeOwners(tenant.data);
  assert.match(ownersBefore, new RegExp(`^${tenant.runAs.uid}:${tenant.runAs.gid} 755 \\.$`, 'm'), "the volume root is the tenant's");
  assert.match(ownersBefore, /^4242:4343 600 \.\/locked\/f$/m);
  const spec = env.spec(tenant, {
    argv: [
      'sh',
      '-c',
      'rm "$FERRY_TENANT_DATA/a.txt" "$FERRY_TENANT_DATA/.dot" && echo half > "$FERRY_TENANT_DATA/new.txt" && echo changed > "$FERRY_TENANT_DATA/sub/b.txt" && chmod 0700 "$FERRY_TENANT_DATA/sub"',
    ],
  });
  const snap = env.substrate.snapshotRef(spec.migrationId);
  assert.equal(snap, `ferry-snapshot-${spec.migrationId}`);

  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  assert.equal(await env.volumeContent(snap), before, 'the snapshot holds the tenant data');
  assert.equal(await env.volumeOwners(snap), ownersBefore, 'the snapshot keeps owners and modes');
  const snapInfo = await env.docker.getVolume(snap).inspect();
  assert.deepEqual(snapInfo.Labels, { 'ferry.role': 'snapshot', 'ferry.migration': spec.migrationId, 'ferry.issue': spec.issue, 'ferry.tenant': tenant.id });

  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  assert.equal((await watchLines(env.substrate, ref)).result.cause, null);
  assert.notEqual(await env.volumeContent(tenant.data), before, 'the job changed the tenant data');

  await env.substrate.restore(tenant, snap);
  assert.equal(await env.volumeContent(tenant.data), before, 'restore replaced the tenant data with the snapshot');
  assert.equal(await env.volumeOwners(tenant.data), ownersBefore, 'restore left every file owned and moded as in the snapshot');

  // A snapshot retried after a crash holds one copy, not two.
  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  assert.equal(await env.volumeContent(snap), before);

  const helpers = await env.docker.listContainers({ all: true, filters: { label: ['ferry.role=snapshot-helper'] } });
  assert.deepEqual(
    helpers.filter((c) => c.Labels['ferry.migration'] === spec.migrationId),
    [],
    'copy helpers are removed after use',
  );

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
