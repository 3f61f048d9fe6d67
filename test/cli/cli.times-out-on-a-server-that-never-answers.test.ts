/**
 * A server that accepts and never answers ends the CLI with a sentence naming the URL (exit 1)
 * instead of a wait without end; `logs --follow` is not cut by the request timeout while the
 * server answers health checks, and fails when it stops answering. Durations are not asserted:
 * a CLI that hangs is killed by runCli and fails on its exit code.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { removeDir, tempDir } from '../support/harness.ts';
import { assertExit, runCli } from './cli-process.ts';
import { answer, recordingServer, silentServer, type RecordingServer, type SilentServer } from './local-servers.ts';

const LOG = '/v1/migrations/m-abc123-0123abcd/logs';

void describe('the CLI times out', () => {
  let work: string;
  let silent: SilentServer;
  /** Sends one log line, then nothing, and never answers anything else: a server that stopped. */
  let stalled: RecordingServer;
  /** Sends a line, stays quiet for longer than the timeout while answering /healthz, then another line and the end. */
  let quiet: RecordingServer;
  const open = new Set<ServerResponse>();

  before(async () => {
    work = tempDir('ferry-cli-timeout-');
    silent = await silentServer();
    stalled = await recordingServer((req, res) => {
      if (!req.url?.startsWith(LOG)) return; // never answers: not even /healthz
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.write('first line\n');
      open.add(res);
    });
    quiet = await recordingServer((req, res) => {
      if (req.url === '/healthz') return answer(res, 200, 'application/json', '{"ok":true}');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.write('before the quiet\n');
      setTimeout(() => res.end('after the quiet\n'), 2_500);
    });
  });

  after(async () => {
    for (const res of open) res.destroy();
    await Promise.all([silent.close(), stalled.close(), quiet.close()]);
    removeDir(work);
  });

  void test('a request to a server that never answers ends with a sentence naming the URL (--timeout)', async () => {
    const r = await runCli(['--url', silent.url, '--token', 'some-token-0123456789', '--timeout', '1s', 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 1);
    assert.match(r.stderr, new RegExp(`^ferry: Ferry at ${silent.url} did not answer within 1s`, 'm'));
    assert.match(r.stderr, /ferry serve/);
    assert.ok(silent.connections() >= 1, 'it did connect');
  });

  void test('FERRY_TIMEOUT works like --timeout, and a bad value is a usage error', async () => {
    const [byEnv, bad] = await Promise.all([
      runCli(['--url', silent.url, 'tenant', 'ls'], { cwd: work, env: { FERRY_TIMEOUT: '500ms', FERRY_TOKEN: 'some-token-0123456789' }, killAfterMs: 30_000 }),
      runCli(['--url', silent.url, '--token', 'some-token-0123456789', '--timeout', 'soon', 'ls'], { cwd: work, killAfterMs: 30_000 }),
    ]);
    assertExit(byEnv, 1);
    assert.match(byEnv.stderr, new RegExp(`Ferry at ${silent.url} did not answer within 500ms`));
    assertExit(bad, 2);
    assert.match(bad.stderr, /--timeout.*"soon" is not a duration/);
  });

  void test('logs --follow fails with a sentence when the server stops answering', async () => {
    const r = await runCli(['--url', stalled.url, '--token', 'some-token-0123456789', '--timeout', '1s', 'logs', 'm-abc123-0123abcd', '--follow'], {
      cwd: work,
      killAfterMs: 30_000,
    });
    assertExit(r, 1);
    assert.equal(r.stdout, 'first line\n');
    assert.match(r.stderr, new RegExp(`^ferry: Ferry at ${stalled.url} stopped answering`, 'm'));
    assert.ok(
      stalled.requests.some((q) => q.url === '/healthz'),
      'it asked the server whether it is alive',
    );
  });

  void test('logs --follow is not cut by the timeout while the server answers: a quiet step is followed to its end', async () => {
    const r = await runCli(['--url', quiet.url, '--token', 'some-token-0123456789', '--timeout', '1s', 'logs', 'm-abc123-0123abcd', '--follow'], {
      cwd: work,
      killAfterMs: 30_000,
    });
    assertExit(r, 0);
    assert.equal(r.stdout, 'before the quiet\nafter the quiet\n');
    const probes = quiet.requests.filter((q) => q.url === '/healthz');
    assert.ok(probes.length >= 1, 'the quiet was longer than the timeout, so the server was asked');
    assert.ok(
      probes.every((q) => q.authorization === undefined),
      'a health check carries no token',
    );
  });
});
