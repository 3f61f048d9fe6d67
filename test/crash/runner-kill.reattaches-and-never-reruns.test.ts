/**
 * kill -9 of the server never kills or repeats a migration: the job keeps running while Ferry is
 * down, the next start re-attaches and records its outcome, and a job that vanished is held `lost`.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { removeDir, request, sh, tempDir, waitFor } from '../support/harness.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

let dataDir: string | null = null;
let server: ServerProcess | null = null;

afterEach(async () => {
  if (server) {
    const all = (await server.api('GET', '/v1/migrations')).body as Array<{ issue: string }>;
    for (const issue of new Set(all.map((m) => m.issue))) await server.api('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});
    await server.kill('SIGTERM');
    server = null;
  }
  if (dataDir) {
    const leaked = supervisorsOf(dataDir);
    removeDir(dataDir);
    dataDir = null;
    assert.deepEqual(leaked, [], 'no supervisor may outlive the test');
  }
});

function supervisorsOf(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('ferry-supervise') && cmd.includes(dir)) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

const tenantFile = (name: string) => join(dataDir!, 'tenants', 'shop', name);
const read = (name: string) => (existsSync(tenantFile(name)) ? readFileSync(tenantFile(name), 'utf8') : null);

async function setup(): Promise<ServerProcess> {
  dataDir = tempDir('ferry-crash-');
  server = await spawnServer(dataDir);
  const t = await server.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' } });
  assert.equal(t.status, 201);
  return server;
}

async function fileAndApprove(s: ServerProcess, doc: Record<string, unknown>): Promise<string> {
  const filed = await s.api('POST', '/v1/migrations', doc);
  assert.equal(filed.status, 201, JSON.stringify(filed.body));
  assert.equal((await s.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
  return filed.body.id;
}

void test('kill -9 mid-step: the job finishes while Ferry is down, the restart records it, and every step ran exactly once', async () => {
  let s = await setup();
  const id = await fileAndApprove(
    s,
    request('shop', [
      {
        name: 'one',
        run: sh('echo one >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done'),
      },
      { name: 'two', run: sh('echo two >> "$FERRY_TENANT_DATA/ledger"') },
    ]),
  );
  await waitFor('step one to start', () => read('started') !== null);
  await s.kill('SIGKILL');
  // Ferry is down; the job is not: let it finish and check it did.
  const { writeFileSync } = await import('node:fs');
  writeFileSync(tenantFile('go'), '');
  await waitFor('step one to end while Ferry is down', () => supervisorsOf(dataDir!).length === 0);
  assert.equal(read('ledger'), 'one\n', 'step two does not start without the runner');

  s = server = await spawnServer(dataDir!);
  const done = await waitFor('the migration to succeed after the restart', async () => {
    const m = (await s.api('GET', `/v1/migrations/${id}`)).body;
    return m.state === 'succeeded' ? m : null;
  });
  assert.equal(read('ledger'), 'one\ntwo\n', 'each step ran exactly once');
  assert.equal(done.attempts.length, 1, 'no new attempt');
  assert.equal(done.events.filter((e: { kind: string }) => e.kind === 'start').length, 1);
});

void test('kill -9 while a step runs: the restarted server re-attaches to the live job and follows it to the end', async () => {
  let s = await setup();
  const id = await fileAndApprove(
    s,
    request('shop', [
      {
        name: 'long',
        run: sh(
          'echo run >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; echo "::ferry::checkpoint half"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done; exit 3',
        ),
      },
    ]),
  );
  await waitFor('the step to start', () => read('started') !== null);
  await s.kill('SIGKILL');
  s = server = await spawnServer(dataDir!);
  assert.equal((await s.api('GET', `/v1/migrations/${id}`)).body.state, 'running', 're-attached, still running');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(tenantFile('go'), '');
  const held = await waitFor('the outcome to be recorded', async () => {
    const m = (await s.api('GET', `/v1/migrations/${id}`)).body;
    return m.state === 'held' ? m : null;
  });
  assert.equal(held.heldCause, 'exit-code');
  assert.equal(held.attempts[0].exitCode, 3);
  assert.deepEqual(held.checkpoint, { step: 0, text: 'half' });
  assert.equal(read('ledger'), 'run\n');
});

void test('a job that vanished while Ferry was down is held with cause lost and never re-run', async () => {
  let s = await setup();
  const id = await fileAndApprove(
    s,
    request('shop', [{ name: 'long', run: sh('echo run >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; sleep 60') }]),
  );
  await waitFor('the step to start', () => read('started') !== null);
  await s.kill('SIGKILL');
  // Something kills the supervisor and its job while Ferry is away (an OOM killer, an operator).
  for (const pid of supervisorsOf(dataDir!)) process.kill(Number(pid), 'SIGKILL');
  s = server = await spawnServer(dataDir!);
  const held = await waitFor('the migration to be held as lost', async () => {
    const m = (await s.api('GET', `/v1/migrations/${id}`)).body;
    return m.state === 'held' ? m : null;
  });
  assert.equal(held.heldCause, 'lost');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(read('ledger'), 'run\n', 'never re-run');
  assert.equal((await s.api('GET', `/v1/migrations/${id}`)).body.attempts.length, 1);
});

void test('SIGTERM stops the server but not the migration', async () => {
  let s = await setup();
  const id = await fileAndApprove(
    s,
    request('shop', [
      {
        name: 'long',
        run: sh('touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done; echo done > "$FERRY_TENANT_DATA/done"'),
      },
    ]),
  );
  await waitFor('the step to start', () => read('started') !== null);
  await s.kill('SIGTERM');
  assert.equal(supervisorsOf(dataDir!).length, 1, 'the job survives a graceful stop');
  s = server = await spawnServer(dataDir!);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(tenantFile('go'), '');
  await waitFor('success', async () => (await s.api('GET', `/v1/migrations/${id}`)).body.state === 'succeeded');
  assert.equal(read('done'), 'done\n');
});
