/**
 * Hostile jobs on the container substrate (issue #8, "Containers too"): each step below tries to
 * get out of its box and must fail, while its own work in its tenant volume and scratch succeeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import type { StepSpec } from '../../../src/substrates/substrate.ts';
import type { ContainerSubstrate } from '../../../src/substrates/container/container-substrate.ts';
import { usePodman, watchLines } from './support/podman-fixture.ts';
import type { PodmanEnv } from './support/podman-fixture.ts';

const podman = usePodman();

/** Start, watch to the end, inspect and clean up one step; returns what the job printed. */
async function run(
  env: PodmanEnv,
  spec: StepSpec,
  substrate: ContainerSubstrate = env.substrate,
): Promise<{ lines: string[]; exitCode: number | null; info: Docker.ContainerInspectInfo }> {
  await env.prepare(spec);
  const ref = substrate.jobRef(spec);
  try {
    await substrate.start(spec, ref);
    const { result, lines } = await watchLines(substrate, ref);
    const info = await env.docker.getContainer(ref).inspect();
    return { lines, exitCode: result.exitCode, info };
  } finally {
    await env.cleanup(spec, ref);
  }
}

void test('a job runs as its tenant uid:gid, without new privileges or capabilities, a pids limit, and only its two volumes mounted', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant({ runAs: { uid: 200_777, gid: 200_778 } });
  const sockets = ['/run/podman/podman.sock', '/var/run/docker.sock', '/run/docker.sock', '/var/run/podman/podman.sock'];
  const spec = env.spec(tenant, {
    argv: [
      'sh',
      '-c',
      `id -u; id -g; grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd):' /proc/self/status; for s in ${sockets.join(' ')}; do [ -e "$s" ] && echo "reachable $s"; done; echo end`,
    ],
  });
  const { lines, exitCode, info } = await run(env, spec);
  assert.equal(exitCode, 0, lines.join('\n'));
  assert.deepEqual(lines, ['200777', '200778', 'CapPrm:\t0000000000000000', 'CapEff:\t0000000000000000', 'CapBnd:\t0000000000000000', 'NoNewPrivs:\t1', 'end']);

  assert.equal(info.Config.User, '200777:200778');
  assert.ok(info.HostConfig.SecurityOpt?.includes('no-new-privileges'), `SecurityOpt ${JSON.stringify(info.HostConfig.SecurityOpt)}`);
  assert.equal(info.HostConfig.Privileged, false);
  assert.equal(info.HostConfig.PidsLimit, 1024, 'the default pids limit when the peak declares none');
  // Nothing but the two named volumes: no bind mount at all, so no engine socket.
  const mounts = (info.Mounts as Array<{ Type: string; Name?: string; Source: string; Destination: string }>).map((m) => ({
    type: m.Type,
    name: m.Name,
    destination: m.Destination,
  }));
  assert.deepEqual(
    mounts.sort((a, b) => a.destination.localeCompare(b.destination)),
    [
      { type: 'volume', name: spec.scratchRef, destination: '/ferry/scratch' },
      { type: 'volume', name: tenant.data, destination: '/ferry/tenant' },
    ],
  );
  for (const m of info.Mounts as Array<{ Source: string }>)
    assert.ok(!/\.sock$|podman|docker/.test(m.Source.replace(/\/var\/lib\/containers\/storage\/volumes\/.*/, '')), `mount source ${m.Source}`);
});

void test('nothing of the server environment reaches the job: only the contract variables and the request env', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const secret = `leak-${process.pid}-${Date.now()}`;
  process.env['FERRY_TOKEN'] = secret;
  process.env['FERRY_GITHUB_WEBHOOK_SECRET'] = secret;
  process.env['CONFINEMENT_TEST_SECRET'] = secret;
  try {
    const tenant = await env.tenant();
    const base = env.spec(tenant);
    const spec = env.spec(tenant, { migrationId: base.migrationId, env: { ...base.env, SOURCE: 'old-shop' }, argv: ['sh', '-c', 'env'] });
    const { lines } = await run(env, spec);
    assert.ok(!lines.some((l) => l.includes(secret)), `the server's environment leaked: ${lines.join(' | ')}`);
    const ferryNames = lines
      .map((l) => l.split('=')[0])
      .filter((n) => n?.startsWith('FERRY_'))
      .sort();
    assert.deepEqual(ferryNames, ['FERRY_ATTEMPT', 'FERRY_MIGRATION_ID', 'FERRY_SCRATCH', 'FERRY_STEP', 'FERRY_TENANT', 'FERRY_TENANT_DATA']);
    assert.ok(lines.includes('SOURCE=old-shop'));
  } finally {
    delete process.env['FERRY_TOKEN'];
    delete process.env['FERRY_GITHUB_WEBHOOK_SECRET'];
    delete process.env['CONFINEMENT_TEST_SECRET'];
  }
});

void test('a fork past the peak pids fails, while the same job under a higher limit forks them all', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const forkForty = ['sh', '-c', 'for i in $(seq 1 40); do sleep 1 & done; echo all-forked'];
  const limited = env.spec(tenant, { limits: { cpu: 500, memory: 64 * 1024 * 1024, pids: 20 }, argv: forkForty });
  const bounded = await run(env, limited);
  assert.equal(bounded.info.HostConfig.PidsLimit, 20, 'the peak pids is the limit');
  assert.ok(!bounded.lines.includes('all-forked'), `forked 40 under a limit of 20: ${bounded.lines.join(' | ')}`);
  assert.ok(
    bounded.lines.some((l) => /can't fork/.test(l)),
    bounded.lines.join(' | '),
  );

  const roomy = await run(env, env.spec(tenant, { limits: { cpu: 500, memory: 64 * 1024 * 1024, pids: 100 }, argv: forkForty }));
  assert.deepEqual(roomy.lines, ['all-forked']);
});

void test('a tenant volume is written by its own identity after adoptTenantData, never by another uid, and scratch is the migration own (0700)', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant({ runAs: { uid: 200_500, gid: 200_500 }, adopt: false });
  const write = [
    'sh',
    '-c',
    'echo mine > "$FERRY_TENANT_DATA/own.txt" && echo edited >> "$FERRY_TENANT_DATA/sub/b.txt" && echo s > "$FERRY_SCRATCH/s.txt" && stat -c "%u:%g %a" "$FERRY_SCRATCH" && echo wrote',
  ];

  // Before the hand-over the volume is root's: the job may not write it.
  const before = await run(env, env.spec(tenant, { argv: write }));
  assert.notEqual(before.exitCode, 0);
  assert.ok(!before.lines.includes('wrote'), before.lines.join(' | '));
  assert.ok(
    before.lines.some((l) => /Permission denied/.test(l)),
    before.lines.join(' | '),
  );

  assert.equal(await env.substrate.adoptTenantData(tenant), `handed volume ${tenant.data} over to uid 200500 gid 200500`);
  const owners = (await env.volumeOwners(tenant.data)).trim().split('\n');
  assert.deepEqual(
    owners.map((l) => l.split(' ')[0]).filter((o) => o !== '200500:200500'),
    [],
    `everything is the tenant's: ${owners.join(' | ')}`,
  );

  const after = await run(env, env.spec(tenant, { argv: write }));
  assert.equal(after.exitCode, 0, after.lines.join(' | '));
  assert.deepEqual(after.lines, ['200500:200500 700', 'wrote']);
  assert.match(await env.volumeContent(tenant.data), /\.\/own\.txt\tmine/);

  // Another identity on the same volume (e.g. runAs changed without a hand-over) cannot write it.
  const intruder = { ...tenant, runAs: { uid: 200_501, gid: 200_501 } };
  const other = await run(
    env,
    env.spec(intruder, {
      argv: ['sh', '-c', 'id -u; touch "$FERRY_TENANT_DATA/x" || echo refused-root; echo more >> "$FERRY_TENANT_DATA/own.txt" || echo refused-file'],
    }),
  );
  assert.deepEqual(
    other.lines.filter((l) => !/Permission denied/.test(l)),
    ['200501', 'refused-root', 'refused-file'],
  );
  assert.doesNotMatch(await env.volumeContent(tenant.data), /more/);
});

void test('adoptTenantData of a volume that does not exist answers null and creates nothing', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const ghost = { ...tenant, id: `${tenant.id}-ghost`, data: `${tenant.data}-ghost` };
  assert.equal(await env.substrate.adoptTenantData(ghost), null);
  await assert.rejects(env.docker.getVolume(ghost.data).inspect(), 'no volume was created');
  const helpers = await env.docker.listContainers({ all: true, filters: { label: ['ferry.role=volume-helper'] } });
  assert.deepEqual(
    helpers.filter((c) => c.Labels['ferry.tenant'] === tenant.id || c.Labels['ferry.tenant'] === ghost.id),
    [],
    'no helper left behind',
  );
});

void test('a tenant data that is not a volume name (a host path such as the engine socket) is refused', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec({ ...tenant, data: '/run/podman/podman.sock' });
  await env.prepare(spec);
  await assert.rejects(env.substrate.start(spec, env.substrate.jobRef(spec)), /is not a volume name/);
  await assert.rejects(env.substrate.adoptTenantData(spec.tenant), /is not a volume name/);
  await assert.rejects(env.docker.getContainer(env.substrate.jobRef(spec)).inspect(), 'no container was created');
  await env.substrate.remove('scratch', spec.scratchRef);
});

void test('a tenant without allowRoot is never run as root, even when its runAs says 0', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec({ ...tenant, runAs: { uid: 0, gid: 0 } });
  await env.prepare(spec);
  await assert.rejects(env.substrate.start(spec, env.substrate.jobRef(spec)), /not allowed root/);
  await env.substrate.remove('scratch', spec.scratchRef);
});

void test('allowRoot runs the job as uid 0 with the engine default capabilities, still without new privileges and with the pids limit', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const tenant = await env.tenant({ allowRoot: true });
  const spec = env.spec(tenant, {
    argv: ['sh', '-c', 'id -u; grep -E \'^(NoNewPrivs|CapEff):\' /proc/self/status; echo root > "$FERRY_TENANT_DATA/r.txt" && echo wrote'],
  });
  const { lines, info } = await run(env, spec);
  assert.equal(lines[0], '0');
  assert.ok(lines.includes('NoNewPrivs:\t1'), lines.join(' | '));
  const capEff = lines.find((l) => l.startsWith('CapEff:'));
  assert.ok(capEff && !/^CapEff:\t0+$/.test(capEff), `the engine's default capabilities: ${capEff}`);
  assert.equal(lines.at(-1), 'wrote');
  assert.equal(info.Config.User, '0:0');
  assert.ok(info.HostConfig.SecurityOpt?.includes('no-new-privileges'));
  assert.equal(info.HostConfig.PidsLimit, 1024);
});
