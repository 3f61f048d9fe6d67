/**
 * A remote engine address is refused where `ferry serve` starts, whoever names it (DOCKER_HOST,
 * FERRY_DOCKER_SOCKET): the config keeps the address as given, and the container substrate refuses
 * it with a sentence that says what to do, instead of dialling `tcp://…` as a socket path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { compileConfig } from '../../../src/config.ts';
import { FerryError } from '../../../src/core/errors.ts';
import { createSubstrate, startService } from '../../../src/service.ts';
import { DEFAULT_SOCKET_PATH } from '../../../src/substrates/container/container-options.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'ferry-remote-engine-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

const refused =
  (address: string) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof FerryError, `a FerryError, got ${String(err)}`);
    assert.equal(err.code, 'FERRY_BAD_REQUEST');
    assert.match(err.message, new RegExp(`container engine address ${address} is not supported: the container substrate needs a local engine`));
    assert.match(err.message, /point DOCKER_HOST, FERRY_DOCKER_SOCKET or dockerSocket at the local engine's socket/);
    return true;
  };

for (const [name, address] of [
  ['DOCKER_HOST', 'tcp://10.0.0.1:2375'],
  ['FERRY_DOCKER_SOCKET', 'tcp://engine.example:2376'],
  ['DOCKER_HOST', 'ssh://root@engine.example'],
] as const) {
  void test(`${name}=${address} with the container substrate is refused when the substrate is created`, async () => {
    const config = compileConfig({ flags: { dataDir, port: 0 }, env: { FERRY_SUBSTRATE: 'container', [name]: address } });
    await assert.rejects(createSubstrate(config), refused(address));
  });
}

void test('ferry serve with a tcp:// DOCKER_HOST fails at start, and leaves nothing running', async () => {
  const config = compileConfig({ flags: { dataDir, port: 0 }, env: { FERRY_SUBSTRATE: 'container', DOCKER_HOST: 'tcp://10.0.0.1:2375' } });
  await assert.rejects(
    startService(config, () => undefined),
    refused('tcp://10.0.0.1:2375'),
  );
  // The runner lock and the store were given back: the same folder starts again.
  const again = await startService(compileConfig({ flags: { dataDir, port: 0, cgroups: 'off' }, env: {} }), () => undefined);
  await again.stop();
});

void test('a local address still reaches the substrate: unix://, a path, or the one default', async () => {
  for (const env of [{ DOCKER_HOST: 'unix:///var/run/docker.sock' }, { FERRY_DOCKER_SOCKET: '/var/run/docker.sock' }, {}]) {
    const config = compileConfig({ flags: { dataDir, port: 0 }, env: { FERRY_SUBSTRATE: 'container', ...env } });
    const substrate = await createSubstrate(config);
    assert.equal(substrate.kind, 'container');
    await substrate.close();
  }
  assert.equal(compileConfig({ flags: { dataDir }, env: {} }).dockerSocket, DEFAULT_SOCKET_PATH);
});

void test('a tcp:// DOCKER_HOST does not concern the process substrate', async () => {
  const config = compileConfig({ flags: { dataDir, port: 0 }, env: { DOCKER_HOST: 'tcp://10.0.0.1:2375' } });
  const substrate = await createSubstrate(config);
  assert.equal(substrate.kind, 'process');
  await substrate.close();
});
