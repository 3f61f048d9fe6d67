/**
 * The admin token in <data-dir>/token goes only to a loopback address: with any other URL the CLI
 * refuses (exit 2) before it connects anywhere. Every run here is under the connect guard, which
 * logs each connection attempted and stops any off this host, so "nothing was sent" is asserted,
 * not assumed, and no packet leaves even against a CLI that would send one.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeDir, tempDir } from '../support/harness.ts';
import { assertExit, attemptedConnections, runCli, type CliResult } from './cli-process.ts';
import { answer, recordingServer, type RecordingServer } from './local-servers.ts';

const TOKEN = 'local-admin-token-5f1c9e2a7b3d4c6e';

void describe('the CLI never sends the local admin token off this host', () => {
  let work: string;
  let dataDir: string;
  let server: RecordingServer;
  let n = 0;

  /** `ferry --data-dir <folder with the token> <args>` under the connect guard. */
  async function run(
    args: string[],
    env: Record<string, string> = {},
    folder = dataDir,
  ): Promise<{ r: CliResult; attempted: Array<{ host: string; port: number }> }> {
    const guard = join(work, `connections-${++n}.jsonl`);
    const r = await runCli(['--data-dir', folder, ...args], { cwd: work, env, guard, killAfterMs: 30_000 });
    return { r, attempted: attemptedConnections(guard) };
  }

  function assertRefusedUnsent(r: CliResult, attempted: Array<{ host: string }>): void {
    assertExit(r, 2);
    assert.match(r.stderr, /--token or FERRY_TOKEN/);
    assert.match(r.stderr, /loopback/);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN), 'the token is not shown');
    assert.deepEqual(attempted, [], 'no connection was even attempted');
  }

  before(async () => {
    work = tempDir('ferry-cli-offhost-');
    dataDir = join(work, 'data');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    server = await recordingServer((_req, res) => answer(res, 200, 'application/json', '[]'));
  });

  after(async () => {
    await server.close();
    removeDir(work);
  });

  void test('--url off this host (an IP, or a name) is refused before connecting', async () => {
    for (const url of [
      'http://10.255.255.1:7070/',
      'https://example.invalid:7070',
      'http://127.0.0.1.example.invalid:7070/',
      'http://127.0.0.1@10.255.255.1:7070/',
    ]) {
      const { r, attempted } = await run(['--url', url, 'ls']);
      assertRefusedUnsent(r, attempted);
    }
  });

  void test('FERRY_URL off this host is refused the same way', async () => {
    const { r, attempted } = await run(['tenant', 'ls'], { FERRY_URL: 'http://example.invalid:7070' });
    assertRefusedUnsent(r, attempted);
  });

  void test('a server-url in the data folder that is off this host is refused too', async () => {
    const folder = join(work, 'data-remote');
    mkdirSync(folder);
    writeFileSync(join(folder, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(folder, 'server-url'), 'http://10.255.255.1:7070\n');
    const { r, attempted } = await run(['ls'], {}, folder);
    assertRefusedUnsent(r, attempted);
  });

  void test('an explicit token to plain http off this host is warned about once, not refused', async () => {
    // `check` of a missing file: the client is set up (and warns) first, then the file is read and
    // the command ends without any request, so nothing is sent anywhere.
    const { r, attempted } = await run(['--url', 'http://10.255.255.1:7070', '--token', 'explicit-token-0123456789', 'check', join(work, 'missing.yaml')]);
    assertExit(r, 2);
    assert.match(r.stderr, /cannot read/, 'not refused: it went on to read the document');
    assert.equal(r.stderr.match(/plain http/g)?.length, 1, `one warning:\n${r.stderr}`);
    assert.ok(!r.stderr.includes('explicit-token-0123456789'));
    assert.deepEqual(attempted, []);
  });

  void test('to 127.0.0.1 and localhost the local token is still sent (no over-refusal)', async () => {
    for (const url of [server.url, `http://localhost:${server.port}`]) {
      const { r, attempted } = await run(['--url', url, 'ls']);
      assertExit(r, 0);
      assert.ok(attempted.length > 0 && attempted.every((a) => a.host === '127.0.0.1' || a.host === 'localhost'), JSON.stringify(attempted));
    }
    assert.deepEqual(
      server.requests.map((q) => q.authorization),
      [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`],
    );
  });
});
