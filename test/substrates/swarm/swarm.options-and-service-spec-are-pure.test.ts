import { test } from 'node:test';
import assert from 'node:assert/strict';
import { placementConstraint, resolveSwarmOptions } from '../../../src/substrates/swarm/swarm-options.ts';
import { jobServiceSpec } from '../../../src/substrates/swarm/job-service-spec.ts';
import type { Tenant } from '../../../src/core/types.ts';

const tenant: Tenant = { id: 'a', steadyState: { memory: 1 }, data: 'vol-a', runAs: { uid: 2000, gid: 2000 }, allowRoot: false };

void test("a tenant's placement becomes a constraint: id, hostname, a constraint as given, else the manager's node", () => {
  assert.equal(placementConstraint('e0214j9lqz3kwj1dh79j4gtih', 'm'), 'node.id==e0214j9lqz3kwj1dh79j4gtih');
  assert.equal(placementConstraint('host-b', 'm'), 'node.hostname==host-b');
  assert.equal(placementConstraint('node.labels.tenant==a', 'm'), 'node.labels.tenant==a');
  assert.equal(placementConstraint(null, 'e0214j9lqz3kwj1dh79j4gtih'), 'node.id==e0214j9lqz3kwj1dh79j4gtih');
});

void test("options: the swarm's own socket and the docker CLI image for node agents by default", () => {
  const config = resolveSwarmOptions({ dataDir: '/tmp/x' }, {});
  assert.equal(config.socketPath, '/run/ferry-swarm/docker.sock');
  assert.equal(config.helperImage, 'docker:27-cli');
  assert.equal(resolveSwarmOptions({ dataDir: '/tmp/x', helperImage: 'localhost/h:1' }, {}).helperImage, 'localhost/h:1');
  assert.throws(() => resolveSwarmOptions({ dataDir: '/tmp/x', socketPath: 'tcp://10.0.0.1:2375' }, {}), /not supported/);
});

void test('a job service runs once, confined, with its peak as limits and reservations', () => {
  const spec = jobServiceSpec({
    spec: {
      migrationId: 'm1',
      issue: 'github:acme/p#1',
      tenant,
      attempt: 2,
      stepIndex: 0,
      stepName: 's',
      argv: ['sh', '-c', 'echo hi'],
      env: { X: '1' },
      limits: { cpu: 250, memory: 1024 * 1024 },
      timeoutMs: 5000,
      scratchRef: 'ferry-scratch-m1',
      logPath: '/tmp/log',
    },
    ref: 'ferry-m1-a2-s0',
    image: 'img',
    tenantVolume: 'vol-a',
    user: '2000:2000',
    constraint: 'node.hostname==h',
    logStart: 7,
    logLimit: 4096,
    defaultPidsLimit: 99,
  }) as any;
  assert.deepEqual(spec.Mode, { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } });
  assert.equal(spec.TaskTemplate.RestartPolicy.Condition, 'none');
  assert.equal(spec.UpdateConfig, undefined);
  assert.equal(spec.RollbackConfig, undefined);
  assert.deepEqual(spec.TaskTemplate.Placement.Constraints, ['node.hostname==h']);
  assert.deepEqual(spec.TaskTemplate.Resources, {
    Limits: { MemoryBytes: 1048576, NanoCPUs: 250_000_000, Pids: 99 },
    Reservations: { MemoryBytes: 1048576, NanoCPUs: 250_000_000 },
  });
  assert.deepEqual(spec.TaskTemplate.ContainerSpec.Command, ['sh']);
  assert.deepEqual(spec.TaskTemplate.ContainerSpec.Args, ['-c', 'echo hi']);
  assert.deepEqual(spec.TaskTemplate.ContainerSpec.CapabilityDrop, ['ALL']);
  assert.equal(spec.TaskTemplate.ContainerSpec.User, '2000:2000');
  assert.deepEqual(
    spec.TaskTemplate.ContainerSpec.Mounts.map((m: any) => `${m.Type} ${m.Source} ${m.Target}`),
    ['volume vol-a /ferry/tenant', 'volume ferry-scratch-m1 /ferry/scratch'],
  );
  assert.deepEqual(spec.TaskTemplate.ContainerSpec.Env.sort(), ['FERRY_SCRATCH=/ferry/scratch', 'FERRY_TENANT_DATA=/ferry/tenant', 'X=1']);
  assert.equal(spec.Labels['ferry.role'], 'migration');
  assert.equal(spec.Labels['ferry.log-start'], '7');
  assert.equal(spec.Labels['ferry.log-limit'], '4096');
  assert.equal(spec.Labels['ferry.timeout-ms'], '5000');
});
