/**
 * Crash: over a run of 200 two-step migrations whose steps append `<migration> <attempt> <step>`
 * to a ledger, the server is killed with SIGKILL at 20 random moments and restarted each time.
 * Afterwards every migration is accounted for (succeeded, or held with cause `lost`), no line was
 * written twice by the same attempt, no migration ran an attempt nobody asked for, and the store
 * passes PRAGMA integrity_check.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { listAllMigrations, removeDir, tempDir, waitFor } from '../test/support/harness.ts';
import { spawnServer, type ServerProcess } from '../test/support/server-process.ts';
import { integrityCheck, sleep, stopSupervisors, supervisorsOf } from './support.ts';

const MIGRATIONS = 200;
const KILLS = 20;
const ISSUE = 'github:acme/reliability#1';
// 20 at a time (100m each of 2 cores), so kills land while jobs start, run and end.
const ARGS = ['--capacity-cpu', '2', '--capacity-memory', '64Gi'];

void test(`kill -9 at ${KILLS} random moments over ${MIGRATIONS} migrations: all accounted for, nothing run twice`, { timeout: 420_000 }, async () => {
  const dataDir = tempDir('ferry-rel-crash-');
  let server: ServerProcess = await spawnServer(dataDir, ARGS);
  try {
    const ids: string[] = [];
    for (let i = 0; i < MIGRATIONS; i++) {
      const tenant = `t-${i}`;
      assert.equal((await server.api('PUT', `/v1/tenants/${tenant}`, { steadyState: { cpu: '50m', memory: '32Mi' } })).status, 201);
      const pause = (0.3 + Math.random() * 1.2).toFixed(2);
      const step = (name: string) => ({
        name,
        run: ['sh', '-c', `echo "$FERRY_MIGRATION_ID $FERRY_ATTEMPT $FERRY_STEP" >> "$FERRY_TENANT_DATA/ledger"; sleep ${pause}`],
      });
      const filed = await server.api('POST', '/v1/migrations', {
        issue: ISSUE,
        tenant,
        peak: { cpu: '100m', memory: '64Mi' },
        snapshot: 'never',
        steps: [step('one'), step('two')],
      });
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      ids.push(filed.body.id);
    }

    // Approvals go on while the killer works; a lost answer is retried, a 409 means it went through.
    let approving = true;
    const approver = (async () => {
      for (const id of ids) {
        for (;;) {
          try {
            const r = await server.api('POST', `/v1/migrations/${id}/approve`, {});
            if (r.status === 200 || r.status === 409) break;
            if (r.status < 500 && r.status !== 503) throw new Error(`approve ${id}: ${r.status} ${JSON.stringify(r.body)}`);
          } catch (err) {
            if (err instanceof Error && err.message.startsWith('approve ')) throw err;
          }
          await sleep(50);
        }
        await sleep(20);
      }
      approving = false;
    })();

    const moments: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const wait = 200 + Math.floor(Math.random() * 2800);
      moments.push(wait);
      await sleep(wait);
      await server.kill('SIGKILL');
      server = await spawnServer(dataDir, ARGS);
    }
    await approver;
    assert.equal(approving, false);
    console.log(`killed at ${moments.map((m) => `+${m}ms`).join(', ')} after each (re)start`);

    const all = await waitFor(
      'every migration to end (succeeded or held)',
      async () => {
        const list = (await listAllMigrations(server.api, `issue=${encodeURIComponent(ISSUE)}`)) as Array<{
          id: string;
          state: string;
          heldCause: string | null;
          attempts: number;
        }>;
        return list.every((m) => m.state === 'succeeded' || m.state === 'held') ? list : null;
      },
      240_000,
    );
    assert.equal(all.length, MIGRATIONS, 'no migration was filed twice or lost');
    const held = all.filter((m) => m.state === 'held');
    console.log(`${all.length - held.length} succeeded, ${held.length} held (lost)`);
    for (const m of held) assert.equal(m.heldCause, 'lost', `${m.id} held with cause ${m.heldCause}`);
    for (const m of all) assert.equal(m.attempts, 1, `${m.id} ran ${m.attempts} attempts; only an operator creates attempt 2`);

    // One ledger per tenant: a confined job writes only into its own tenant's data.
    const lines = Array.from({ length: MIGRATIONS }, (_, i) => join(dataDir, 'tenants', `t-${i}`, 'ledger'))
      .filter((ledger) => existsSync(ledger))
      .flatMap((ledger) => readFileSync(ledger, 'utf8').trim().split('\n').filter(Boolean));
    const seen = new Map<string, number>();
    for (const line of lines) seen.set(line, (seen.get(line) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'a ledger line was written twice by the same attempt');
    for (const line of lines) assert.match(line, /^m-\S+ 1 (one|two)$/, `unexpected ledger line ${line}`);
    for (const m of all.filter((x) => x.state === 'succeeded')) {
      assert.ok(seen.has(`${m.id} 1 one`) && seen.has(`${m.id} 1 two`), `${m.id} succeeded without both ledger lines`);
    }
    assert.equal(integrityCheck(dataDir), 'ok');
  } finally {
    const closed = await server.api('POST', `/v1/issues/${encodeURIComponent(ISSUE)}/close`, {}).catch(() => null);
    await server.kill('SIGTERM');
    const leaked = await stopSupervisors(dataDir);
    removeDir(dataDir);
    assert.equal(closed?.status, 200);
    assert.equal(leaked, 0, 'no supervisor may outlive the test');
    assert.deepEqual(supervisorsOf(dataDir), []);
  }
});
