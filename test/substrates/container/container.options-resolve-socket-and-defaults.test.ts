import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SOCKET_PATH, resolveContainerOptions } from '../../../src/substrates/container/container-options.ts';
import { ContainerSubstrate } from '../../../src/substrates/container/container-substrate.ts';

void test('the socket comes from the option, else DOCKER_HOST unix://, else the Podman default', () => {
  assert.equal(resolveContainerOptions({ dataDir: '/d', socketPath: '/s.sock' }, { DOCKER_HOST: 'unix:///x.sock' }).socketPath, '/s.sock');
  assert.equal(resolveContainerOptions({ dataDir: '/d' }, { DOCKER_HOST: 'unix:///var/run/docker.sock' }).socketPath, '/var/run/docker.sock');
  assert.equal(resolveContainerOptions({ dataDir: '/d' }, {}).socketPath, DEFAULT_SOCKET_PATH);
  assert.throws(() => resolveContainerOptions({ dataDir: '/d' }, { DOCKER_HOST: 'tcp://10.0.0.1:2375' }), /needs a local engine/);
});

void test('options are resolved once into a frozen config with documented defaults', () => {
  const c = resolveContainerOptions({ dataDir: '/d' }, {});
  assert.ok(Object.isFrozen(c));
  assert.deepEqual(c, { socketPath: DEFAULT_SOCKET_PATH, dataDir: '/d', capacity: null, defaultImage: null, cgroupParent: null, stopGraceSeconds: 10, pingTimeoutMs: 5000 });
  assert.throws(() => resolveContainerOptions({ dataDir: '' }, {}), /dataDir is required/);
});

void test('init() against a socket that does not answer says where and what to do', async () => {
  const s = new ContainerSubstrate({ socketPath: '/nonexistent/ferry.sock', dataDir: '/tmp/unused', pingTimeoutMs: 1000 });
  await assert.rejects(s.init(), /container engine not answering at unix:\/\/\/nonexistent\/ferry.sock .*podman system service/);
  assert.throws(() => s.capacity(), /call init\(\) first/);
  assert.deepEqual(s.limits(), { enforced: true, detail: 'docker engine API: memory + cpu quota' });
});
