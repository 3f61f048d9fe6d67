/**
 * kill -9 of a server running the container substrate: the container goes on under Podman, the
 * restarted server re-attaches by name and labels, and every step ran exactly once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { containerKit } from '../lifecycle/container-kit.ts';
import { removeDir, request, sh, tempDir, waitFor } from '../support/harness.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

const SOCKET = process.env.FERRY_TEST_DOCKER_SOCKET ?? '/run/podman/podman.sock';
const volume = `ferry-test-crash-${process.pid}`;
let server: ServerProcess | null = null;
let dataDir: string | null = null;

const podman = (...args: string[]) => execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

after(async () => {
  if (server) {
    const all = (await server.api('GET', '/v1/migrations')).body as Array<{ issue: string }>;
    for (const issue of new Set(all.map((m) => m.issue))) await server.api('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});
    await server.kill('SIGTERM');
  }
  try {
    podman('volume', 'rm', '-f', volume);
  } catch {
    // never created
  }
  if (dataDir) removeDir(dataDir);
});

void test('kill -9 of the server: the container finishes under Podman and the restart records each step once', async (t) => {
  const unavailable = await containerKit.available();
  if (unavailable) {
    if (process.env.CI === 'true') throw new Error(`container substrate unavailable in CI: ${unavailable}`);
    console.warn(`SKIPPED: ${unavailable}`);
    t.skip(unavailable);
    return;
  }
  podman('volume', 'create', volume);
  const mount = podman('volume', 'inspect', '--format', '{{.Mountpoint}}', volume);
  const read = (name: string) => (existsSync(join(mount, name)) ? readFileSync(join(mount, name), 'utf8') : null);
  dataDir = tempDir('ferry-crash-container-');
  const args = ['--substrate', 'container'];
  const env = { FERRY_DOCKER_SOCKET: SOCKET, FERRY_DEFAULT_IMAGE: 'localhost/ferry-test:1' };
  let s = (server = await spawnServer(dataDir, args, env));
  assert.equal((await s.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' }, data: volume })).status, 201);
  const filed = await s.api('POST', '/v1/migrations', {
    ...request('shop', [
      {
        name: 'one',
        run: sh('echo one >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.1; done'),
      },
      { name: 'two', run: sh('echo two >> "$FERRY_TENANT_DATA/ledger"') },
    ]),
    snapshot: 'never',
  });
  assert.equal(filed.status, 201, JSON.stringify(filed.body));
  const id = filed.body.id as string;
  assert.equal((await s.api('POST', `/v1/migrations/${id}/approve`, {})).status, 200);
  await waitFor('step one to start', () => read('started') !== null, 60_000);

  await s.kill('SIGKILL');
  writeFileSync(join(mount, 'go'), '');
  await waitFor('step one to end while Ferry is down', () => podman('ps', '--filter', `label=ferry.migration=${id}`, '--format', '{{.Names}}') === '', 60_000);
  assert.equal(read('ledger'), 'one\n', 'step two does not start without the runner');

  s = server = await spawnServer(dataDir, args, env);
  const done = await waitFor(
    'success after the restart',
    async () => {
      const m = (await s.api('GET', `/v1/migrations/${id}`)).body;
      return m.state === 'succeeded' ? m : null;
    },
    90_000,
  );
  assert.equal(read('ledger'), 'one\ntwo\n', 'each step ran exactly once');
  assert.equal(done.attempts.length, 1);
});
