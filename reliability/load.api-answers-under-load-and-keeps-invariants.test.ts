/**
 * Load: while 100 migrations run (and 10 sit held after a failure), 50 concurrent API clients
 * file, read and stream logs for FERRY_RELIABILITY_LOAD_SECONDS (default 60). Zero 5xx and zero
 * failed connections; p50/p99 latency per kind of request is printed, not asserted. At the end the
 * invariants hold: at most one holder per tenant (read from the store), the 100 still run, and
 * nothing left `held` by itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listAllMigrations, removeDir, tempDir, waitFor } from '../test/support/harness.ts';
import { spawnServer } from '../test/support/server-process.ts';
import { doubleHolders, percentile, query, stopSupervisors } from './support.ts';

const SECONDS = Number(process.env.FERRY_RELIABILITY_LOAD_SECONDS ?? 60);
const RUNNING = 100;
const HELD = 10;
const CLIENTS = 50;
const ISSUE = 'github:acme/reliability#2';

void test(`${CLIENTS} API clients for ${SECONDS} s while ${RUNNING} migrations run: no 5xx, invariants hold`, { timeout: (SECONDS + 240) * 1000 }, async () => {
  const dataDir = tempDir('ferry-rel-load-');
  const server = await spawnServer(dataDir, ['--capacity-cpu', '64', '--capacity-memory', '64Gi']);
  try {
    const put = (id: string) => server.api('PUT', `/v1/tenants/${id}`, { steadyState: { cpu: '50m', memory: '32Mi' } });
    const fileApprove = async (tenant: string, script: string) => {
      const filed = await server.api('POST', '/v1/migrations', {
        issue: ISSUE,
        tenant,
        peak: { cpu: '100m', memory: '64Mi' },
        snapshot: 'never',
        steps: [{ name: 'work', run: ['sh', '-c', script] }],
      });
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      assert.equal((await server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
      return filed.body.id as string;
    };
    const running: string[] = [];
    const held: string[] = [];
    for (let i = 0; i < RUNNING; i++) {
      assert.equal((await put(`run-${i}`)).status, 201);
      running.push(
        await fileApprove(`run-${i}`, 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo "line $i"; echo "::ferry::progress $i/100000"; sleep 2; done'),
      );
    }
    for (let i = 0; i < HELD; i++) {
      assert.equal((await put(`held-${i}`)).status, 201);
      held.push(await fileApprove(`held-${i}`, 'echo failing; exit 3'));
    }
    for (let i = 0; i < CLIENTS; i++) assert.equal((await put(`load-${i}`)).status, 201);
    await waitFor(
      'all running, the failing ones held',
      async () => {
        const list = (await listAllMigrations(server.api, 'state=running,held')) as Array<{ state: string }>;
        return list.filter((m) => m.state === 'running').length === RUNNING && list.filter((m) => m.state === 'held').length === HELD;
      },
      120_000,
    );

    const latency = new Map<string, number[]>();
    const failures: string[] = [];
    let requests = 0;
    const timed = async (kind: string, fn: () => Promise<Response>) => {
      const t0 = performance.now();
      try {
        const res = await fn();
        requests++;
        if (res.status >= 500) failures.push(`${kind}: ${res.status} ${(await res.text()).slice(0, 200)}`);
        else await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        if ((err as Error).name !== 'AbortError') failures.push(`${kind}: ${(err as Error).message}`);
      } finally {
        const list = latency.get(kind) ?? [];
        list.push(performance.now() - t0);
        latency.set(kind, list);
      }
    };
    const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
    const end = Date.now() + SECONDS * 1000;
    const client = async (n: number) => {
      while (Date.now() < end) {
        const r = Math.random();
        if (r < 0.2) {
          await timed('file', () =>
            fetch(`${server.url}/v1/migrations`, {
              method: 'POST',
              headers,
              body: JSON.stringify({ issue: ISSUE, tenant: `load-${n}`, peak: { cpu: '100m', memory: '64Mi' }, steps: [{ name: 'x', run: ['true'] }] }),
            }),
          );
        } else if (r < 0.45) {
          await timed('read one', () => fetch(`${server.url}/v1/migrations/${pick([...running, ...held])}`, { headers }));
        } else if (r < 0.6) {
          await timed('list', () => fetch(`${server.url}/v1/migrations?state=running,held`, { headers }));
        } else if (r < 0.8) {
          await timed('log', () => fetch(`${server.url}/v1/migrations/${pick(running)}/logs`, { headers }));
        } else {
          // Follow a live log for a moment, then hang up as a client would.
          await timed('log follow (first bytes)', async () => {
            const ac = new AbortController();
            const res = await fetch(`${server.url}/v1/migrations/${pick(running)}/logs?follow=true`, { headers, signal: ac.signal });
            const reader = res.body?.getReader();
            await reader?.read();
            setTimeout(() => ac.abort(), 300);
            try {
              while (reader && !(await reader.read()).done);
            } catch {
              // aborted
            }
            return new Response(null, { status: res.status });
          });
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));

    for (const [kind, values] of [...latency].sort()) {
      console.log(
        `${kind.padEnd(26)} n=${String(values.length).padStart(6)}  p50=${percentile(values, 50).toFixed(1)} ms  p99=${percentile(values, 99).toFixed(1)} ms`,
      );
    }
    const every = [...latency.values()].flat();
    console.log(`all ${requests} requests: p50=${percentile(every, 50).toFixed(1)} ms, p99=${percentile(every, 99).toFixed(1)} ms over ${SECONDS} s`);
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} requests failed (5xx or connection)`);
    assert.equal(server.child.exitCode, null, 'the server is still up');

    assert.deepEqual(doubleHolders(dataDir), [], 'at most one holder per tenant');
    const states = new Map(query<{ id: string; state: string; attempts: number }>(dataDir, 'SELECT id, state, attempts FROM migrations').map((r) => [r.id, r]));
    for (const id of running) assert.equal(states.get(id)?.state, 'running', `${id} still runs`);
    for (const id of held) {
      assert.equal(states.get(id)?.state, 'held', `${id} stays held`);
      assert.equal(states.get(id)?.attempts, 1);
      const last = query<{ to_state: string }>(dataDir, 'SELECT to_state FROM events WHERE migration_id = ? ORDER BY id DESC LIMIT 1', id)[0];
      assert.equal(last?.to_state, 'held', `${id}: nothing moved it out of held`);
    }
  } finally {
    await server.api('POST', `/v1/issues/${encodeURIComponent(ISSUE)}/close`, {}).catch(() => null);
    await server.kill('SIGTERM');
    const leaked = await stopSupervisors(dataDir);
    removeDir(dataDir);
    assert.equal(leaked, 0, 'closing the issue stopped every job');
  }
});
