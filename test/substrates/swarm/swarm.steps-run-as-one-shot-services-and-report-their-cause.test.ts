import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSwarm, watchLines } from './support/swarm-fixture.ts';

const swarm = useSwarm();
const MiB = 1024 * 1024;

void test('a step is one replicated-job service: labels, one completion, no restart, placement, limits and reservations', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec(tenant, {
    argv: [
      'sh',
      '-c',
      'id -u; echo "$FERRY_TENANT_DATA $FERRY_SCRATCH $FERRY_TENANT"; cat /ferry/tenant/a.txt; echo done > /ferry/tenant/out.txt; echo ::ferry::checkpoint one',
    ],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const info = (await env.docker.getService(ref).inspect()) as {
    Spec: {
      Labels: Record<string, string>;
      Mode: unknown;
      TaskTemplate: {
        RestartPolicy: { Condition: string };
        Placement: { Constraints: string[] };
        Resources: { Limits: Record<string, number>; Reservations: Record<string, number> };
      };
      UpdateConfig?: unknown;
      RollbackConfig?: unknown;
    };
  };
  assert.equal(info.Spec.Labels['ferry.role'], 'migration');
  assert.equal(info.Spec.Labels['ferry.migration'], spec.migrationId);
  assert.equal(info.Spec.Labels['ferry.tenant'], tenant.id);
  assert.deepEqual(info.Spec.Mode, { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } });
  assert.equal(info.Spec.TaskTemplate.RestartPolicy.Condition, 'none');
  assert.match(info.Spec.TaskTemplate.Placement.Constraints[0]!, /^node\.id==/);
  assert.equal(info.Spec.TaskTemplate.Resources.Limits['MemoryBytes'], 64 * MiB);
  assert.equal(info.Spec.TaskTemplate.Resources.Limits['NanoCPUs'], 500_000_000);
  assert.equal(info.Spec.TaskTemplate.Resources.Limits['Pids'], 1024);
  assert.equal(info.Spec.TaskTemplate.Resources.Reservations['MemoryBytes'], 64 * MiB);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.deepEqual(result, { exitCode: 0, signal: null, cause: null, detail: 'exited with status 0' });
  assert.deepEqual(lines, [String(tenant.runAs.uid), `/ferry/tenant /ferry/scratch ${tenant.id}`, `hello ${tenant.id}`, '::ferry::checkpoint one']);
  assert.equal(env.readLog(spec), `${lines.join('\n')}\n`);
  assert.equal((await env.asRoot(tenant.data, 'cat /v/out.txt')).trim(), 'done');
  await env.cleanup(spec, ref);
});

void test('a non-zero exit is cause exit-code, with stdout and stderr in the log', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'echo before; echo oops >&2; exit 3'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.deepEqual(result, { exitCode: 3, signal: null, cause: 'exit-code', detail: 'exited with status 3' });
  assert.deepEqual(lines.sort(), ['before', 'oops']);
  assert.deepEqual(env.readLog(spec).split('\n').filter(Boolean).sort(), ['before', 'oops']);
  await env.cleanup(spec, ref);
});

void test('memory above the declared peak is cause limit-exceeded', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), {
    limits: { cpu: 1000, memory: 32 * MiB },
    argv: ['sh', '-c', 'echo filling; x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.equal(result.cause, 'limit-exceeded', result.detail);
  assert.match(result.detail, /32Mi/);
  assert.equal(lines[0], 'filling');
  assert.ok(!lines.includes('survived'));
  await env.cleanup(spec, ref);
});

void test('a step past its timeout is stopped: cause deadline', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { timeoutMs: 3000, argv: ['sh', '-c', 'echo waiting; sleep 60; echo woke'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  const t0 = Date.now();
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  const took = Date.now() - t0;
  assert.equal(result.cause, 'deadline', result.detail);
  assert.ok(took >= 2900 && took < 20_000, `stopped after ${took} ms`);
  assert.deepEqual(lines, ['waiting']);
  await env.cleanup(spec, ref);
});

void test('stop() ends a running step with cause cancelled, is idempotent, and a fresh substrate re-attaches to the same result', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'echo started; sleep 60'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const watching = watchLines(env.substrate, ref);
  const until = Date.now() + 20_000;
  while (!env.readLog(spec).includes('started') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  await env.substrate.stop(ref);
  await env.substrate.stop(ref);
  const { result } = await watching;
  assert.equal(result.cause, 'cancelled', result.detail);
  const again = await env.restartedSubstrate();
  const replayed = await watchLines(again, ref);
  assert.equal(replayed.result.cause, 'cancelled');
  assert.deepEqual(replayed.lines, ['started']);
  assert.equal(env.readLog(spec), 'started\n', 'a re-attach writes no line twice');
  await env.cleanup(spec, ref);
});

void test('a job that does not exist is lost; a tenant on a node not in the swarm gets nothing started', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const { result } = await watchLines(env.substrate, 'ferry-nothing-here-a1-s0');
  assert.equal(result.cause, 'lost');
  const spec = env.spec(await env.tenant());
  await env.prepare(spec);
  const elsewhere = { ...spec, tenant: { ...spec.tenant, placement: 'no-such-host' } };
  await assert.rejects(
    env.substrate.start(elsewhere, env.substrate.jobRef(spec)),
    /swarm node \(node\.hostname==no-such-host\) is not in the swarm; nothing was started/,
  );
  assert.equal((await env.substrate.listLabelled()).filter((o) => o.kind === 'job' && o.migrationId === spec.migrationId).length, 0);
  await env.substrate.remove('scratch', spec.scratchRef);
});

void test('snapshot and restore round-trip the tenant volume through helper jobs; closure removes everything', async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec(tenant, { argv: ['sh', '-c', 'rm -rf /ferry/tenant/* /ferry/tenant/.dot; echo new > /ferry/tenant/new.txt'] });
  const snap = env.substrate.snapshotRef(spec.migrationId);
  await env.prepare(spec);
  await env.substrate.snapshot(tenant, snap, { migrationId: spec.migrationId, issue: spec.issue });
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  assert.equal((await watchLines(env.substrate, ref)).result.cause, null);
  assert.equal((await env.asRoot(tenant.data, 'cd /v && ls -A | sort')).trim(), 'new.txt');
  await env.substrate.restore(tenant, snap);
  const owners = await env.asRoot(tenant.data, 'cd /v && find . | sort | while read f; do echo "$(stat -c %u "$f") $f"; done');
  const uid = String(tenant.runAs.uid);
  assert.equal(owners.trim(), [`${uid} .`, `${uid} ./.dot`, `${uid} ./a.txt`, `${uid} ./sub`, `${uid} ./sub/b.txt`].join('\n'));
  await assert.rejects(env.substrate.restore(tenant, 'ferry-snapshot-nope'), /does not exist/);
  const listed = (await env.substrate.listLabelled()).filter((o) => o.migrationId === spec.migrationId).map((o) => `${o.kind} ${o.ref}`);
  assert.deepEqual(listed.sort(), [`job ${ref}`, `scratch ${spec.scratchRef}`, `snapshot ${snap}`]);
  await env.cleanup(spec, ref);
  await env.substrate.remove('snapshot', snap);
  await env.substrate.remove('snapshot', snap);
  await assert.rejects(env.substrate.remove('scratch', tenant.data), /refusing to remove volume/);
});
