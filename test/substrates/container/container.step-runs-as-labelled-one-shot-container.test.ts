import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jobLabels } from '../../../src/substrates/substrate.ts';
import { usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();
const MiB = 1024 * 1024;

void test('a step runs as one container with the job labels, restart policy no, no health check and the declared peak as hard limits', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec(tenant, { limits: { cpu: 250, memory: 48 * MiB }, argv: ['sh', '-c', 'echo started'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  assert.equal(ref, `ferry-${spec.migrationId}-a1-s0`);
  assert.equal(env.substrate.jobRef({ ...spec, stepIndex: -1 }), `ferry-${spec.migrationId}-a1-swipe`);

  await env.substrate.start(spec, ref);
  const info = await env.docker.getContainer(ref).inspect();
  const { result, lines } = await watchLines(env.substrate, ref);

  assert.equal(info.Name.replace(/^\//, ''), ref);
  for (const [k, v] of Object.entries(jobLabels(spec))) assert.equal(info.Config.Labels[k], v, `label ${k}`);
  assert.equal(info.Config.Labels['ferry.role'], 'migration');
  assert.equal(info.HostConfig.RestartPolicy?.Name, 'no');
  assert.deepEqual(info.Config.Healthcheck?.Test, ['NONE']);
  assert.equal(info.HostConfig.Memory, 48 * MiB);
  assert.equal(info.HostConfig.MemorySwap, 48 * MiB, 'no swap beyond the memory limit');
  const cpuOk = info.HostConfig.NanoCpus === 250_000_000 || (info.HostConfig.CpuQuota ?? 0) * 4 === (info.HostConfig.CpuPeriod || 100_000);
  assert.ok(cpuOk, `cpu limit 250m applied (NanoCpus ${info.HostConfig.NanoCpus}, quota ${info.HostConfig.CpuQuota}/${info.HostConfig.CpuPeriod})`);

  // Only this tenant's volume and this migration's scratch are mounted.
  const mounts = (info.Mounts as Array<{ Name?: string; Destination: string }>).map((m) => `${m.Name}:${m.Destination}`).sort();
  assert.deepEqual(mounts, [`${spec.scratchRef}:/ferry/scratch`, `${tenant.data}:/ferry/tenant`].sort());

  assert.deepEqual(result, { exitCode: 0, signal: null, cause: null, detail: 'exited with status 0' });
  assert.deepEqual(lines, ['started']);
  assert.equal(env.readLog(spec), 'started\n');

  const listed = (await env.substrate.listLabelled()).filter((o) => o.migrationId === spec.migrationId);
  assert.deepEqual(
    listed.sort((a, b) => a.kind.localeCompare(b.kind)),
    [
      { kind: 'job', ref, migrationId: spec.migrationId, issue: spec.issue },
      { kind: 'scratch', ref: spec.scratchRef, migrationId: spec.migrationId, issue: spec.issue },
    ],
  );
  await env.cleanup(spec, ref);
});

void test('the job sees FERRY_TENANT_DATA, FERRY_SCRATCH, the request env and its tenant data', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const base = env.spec(tenant);
  const spec = env.spec(tenant, {
    migrationId: base.migrationId,
    env: { ...base.env, SOURCE: 'old-shop' },
    argv: ['sh', '-c', 'env | grep -E "^(FERRY_|SOURCE=)" | sort; cat "$FERRY_TENANT_DATA/a.txt"; echo scratch > "$FERRY_SCRATCH/x" && cat "$FERRY_SCRATCH/x"'],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.equal(result.cause, null, result.detail);
  assert.deepEqual(lines, [
    'FERRY_ATTEMPT=1',
    `FERRY_MIGRATION_ID=${spec.migrationId}`,
    'FERRY_SCRATCH=/ferry/scratch',
    'FERRY_STEP=0',
    `FERRY_TENANT=${tenant.id}`,
    'FERRY_TENANT_DATA=/ferry/tenant',
    'SOURCE=old-shop',
    `hello ${tenant.id}`,
    'scratch',
  ]);
  await env.cleanup(spec, ref);
});

void test('a tenant whose data volume does not exist is refused before any container is made', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = { id: 'ghost', steadyState: {}, data: `ferry-test-missing-${Date.now()}`, runAs: { uid: 200_099, gid: 200_099 }, allowRoot: false };
  assert.equal(await env.substrate.tenantDataExists(tenant), false);
  const spec = env.spec(await env.tenant(), {});
  await env.prepare(spec);
  const ghostSpec = { ...spec, tenant };
  await assert.rejects(env.substrate.start(ghostSpec, env.substrate.jobRef(ghostSpec)), /data volume .* does not exist/);
  await assert.rejects(env.docker.getVolume(tenant.data).inspect(), 'no volume was created on the fly');
  await assert.rejects(env.docker.getContainer(env.substrate.jobRef(ghostSpec)).inspect(), 'no container was created');
  await env.substrate.remove('scratch', spec.scratchRef);
});
