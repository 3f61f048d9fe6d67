import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../../src/core/errors.ts';
import { DEFAULT_SOCKET_PATH, resolveContainerOptions } from '../../../src/substrates/container/container-options.ts';
import { ContainerSubstrate } from '../../../src/substrates/container/container-substrate.ts';

void test('the socket comes from the option, else DOCKER_HOST unix://, else the Podman default', () => {
  assert.equal(resolveContainerOptions({ dataDir: '/d', socketPath: '/s.sock' }, { DOCKER_HOST: 'unix:///x.sock' }).socketPath, '/s.sock');
  assert.equal(resolveContainerOptions({ dataDir: '/d' }, { DOCKER_HOST: 'unix:///var/run/docker.sock' }).socketPath, '/var/run/docker.sock');
  assert.equal(resolveContainerOptions({ dataDir: '/d' }, {}).socketPath, DEFAULT_SOCKET_PATH);
  assert.throws(() => resolveContainerOptions({ dataDir: '/d' }, { DOCKER_HOST: 'tcp://10.0.0.1:2375' }), /needs a local engine/);
  // socketPath is what `ferry serve` passes on from DOCKER_HOST / FERRY_DOCKER_SOCKET: read the same way.
  assert.equal(resolveContainerOptions({ dataDir: '/d', socketPath: 'unix:///x.sock' }, {}).socketPath, '/x.sock');
  assert.throws(
    () => resolveContainerOptions({ dataDir: '/d', socketPath: 'tcp://10.0.0.1:2375' }, {}),
    /tcp:\/\/10.0.0.1:2375 is not supported: .*needs a local engine/,
  );
});

void test('options are resolved once into a frozen config with documented defaults', () => {
  const c = resolveContainerOptions({ dataDir: '/d' }, {});
  assert.ok(Object.isFrozen(c));
  assert.deepEqual(c, {
    socketPath: DEFAULT_SOCKET_PATH,
    dataDir: '/d',
    capacity: null,
    defaultImage: null,
    cgroupParent: null,
    stopGraceSeconds: 10,
    pingTimeoutMs: 5000,
    defaultPidsLimit: 1024,
    logLimit: 64 * 1024 * 1024,
  });
  assert.throws(() => resolveContainerOptions({ dataDir: '' }, {}), /dataDir is required/);
  assert.throws(() => resolveContainerOptions({ dataDir: '/d', defaultPidsLimit: 0 }, {}), /defaultPidsLimit must be a whole number >= 1/);
  assert.throws(() => resolveContainerOptions({ dataDir: '/d', logLimit: 100 }, {}), /logLimit must be a whole number of bytes >= 1024/);
  assert.equal(resolveContainerOptions({ dataDir: '/d', logLimit: 4096, defaultPidsLimit: 50 }, {}).logLimit, 4096);
});

void test('jobs are said to be confined, and cpu, memory and pids are the dimensions enforced', () => {
  const s = new ContainerSubstrate({ socketPath: '/nonexistent/ferry.sock', dataDir: '/tmp/unused', defaultPidsLimit: 77 });
  const isolation = s.isolation();
  assert.equal(isolation.isolated, true);
  assert.match(isolation.detail, /uid:gid/);
  assert.match(isolation.detail, /no-new-privileges/);
  assert.match(isolation.detail, /else 77\)/, 'the default pids limit in force is said');
  assert.match(isolation.detail, /never the engine socket/);
  assert.deepEqual(s.enforcedDimensions(), ['cpu', 'memory', 'pids']);
});

void test('init() against a socket that does not answer says where and what to do', async () => {
  const s = new ContainerSubstrate({ socketPath: '/nonexistent/ferry.sock', dataDir: '/tmp/unused', pingTimeoutMs: 1000 });
  await assert.rejects(s.init(), (err: unknown) => {
    assert.ok(err instanceof FerryError);
    assert.equal(err.code, 'FERRY_ENGINE_UNAVAILABLE');
    assert.equal(err.status, 503);
    assert.match(err.message, /container engine not answering at unix:\/\/\/nonexistent\/ferry.sock .*podman system service/);
    return true;
  });
  assert.throws(() => s.capacity(), { code: 'FERRY_INTERNAL', message: /call init\(\) first/ });
  assert.deepEqual(s.limits(), { enforced: true, detail: 'docker engine API: memory + cpu quota + pids limit' });
});
