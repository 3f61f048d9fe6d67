/**
 * A flood of half-sent requests (headers never finished) cannot exhaust the server's descriptors:
 * the server runs with a low descriptor limit (ulimit -n 400: Node raises a soft limit to the hard one at start, so both), so it lowers its connection cap to
 * leave 256 free and says so; the flood (600 connections to 127.0.0.1, closed at the end of the
 * test) evicts itself, /healthz answers while it is on, and a running migration, whose job needs
 * its log, still succeeds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { call, removeDir, request, sh, tempDir, waitFor } from '../support/harness.ts';

const BIN = new URL('../../bin/ferry.js', import.meta.url).pathname;
const FLOOD = 600;

void describe('connection flood', () => {
  let dir: string;
  let child: ChildProcess;
  let stderr = '';
  let url: string;
  let token: string;
  const flood: Socket[] = [];
  const api = (method: string, path: string, body?: unknown) => call(url, token, method, path, body);

  before(async () => {
    dir = tempDir();
    rmSync(join(dir, 'server-url'), { force: true });
    child = spawn('sh', ['-c', 'ulimit -n 400 && exec "$@"', 'sh', process.execPath, BIN, '--data-dir', dir, 'serve', '--port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
    });
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    url = await waitFor(
      'the server to write its url',
      () => {
        if (child.exitCode !== null) throw new Error(`ferry serve exited ${child.exitCode}: ${stderr}`);
        const p = join(dir, 'server-url');
        return existsSync(p) ? readFileSync(p, 'utf8').trim() : null;
      },
      30_000,
    );
    token = readFileSync(join(dir, 'token'), 'utf8').trim();
  });

  after(async () => {
    for (const s of flood) s.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    removeDir(dir);
  });

  void test('the cap is lowered to fit the descriptor limit, and the log says so', async () => {
    // 400 descriptors, 256 kept free: 144 connections.
    await waitFor('the start-up log', () => /at most \d+ HTTP connections/.test(stderr));
    assert.match(stderr, /at most 144 HTTP connections at once, not 1000/);
  });

  void test('half-sent requests do not keep /healthz from answering, nor a running job from succeeding', async () => {
    assert.equal((await api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const script = 'echo started; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done; echo finished-$i';
    const filed = await api('POST', '/v1/migrations', request('shop', [{ name: 'wait', run: sh(script), timeout: '5m' }]));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    const id = filed.body.id as string;
    assert.equal((await api('POST', `/v1/migrations/${id}/approve`, {})).status, 200);
    await waitFor('the job to run', async () => (await api('GET', `/v1/migrations/${id}`)).body.state === 'running');

    const { port } = new URL(url);
    await Promise.all(
      Array.from(
        { length: FLOOD },
        () =>
          new Promise<void>((resolve) => {
            const s = connect(Number(port), '127.0.0.1', () => {
              s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
              resolve();
            });
            s.on('error', () => resolve());
            s.on('close', () => resolve());
            flood.push(s);
          }),
      ),
    );
    const open = () => flood.filter((s) => !s.destroyed && s.readyState === 'open').length;
    assert.ok(open() > 0, 'the flood is on');

    // Fresh connections get in while half-sent ones hold their places.
    await waitFor('/healthz to answer during the flood', async () => {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(() => null);
      return res?.status === 200;
    });
    assert.ok(open() > 0, 'the flood is still on');

    writeFileSync(join(dir, 'tenants', 'shop', 'go'), '');
    await waitFor(
      'the migration to succeed',
      async () => {
        const m = await api('GET', `/v1/migrations/${id}`).catch(() => null);
        if (m?.body.state === 'held') throw new Error(`held: ${JSON.stringify(m.body.attempts)}`);
        return m?.body.state === 'succeeded';
      },
      90_000,
    );
    const log = await api('GET', `/v1/migrations/${id}/logs`);
    assert.match(log.body, /started\n[^]*finished-\d+\n/);
    assert.equal(child.exitCode, null, 'the server is still running');
  });
});
