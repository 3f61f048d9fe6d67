/**
 * No message of the CLI shows a token: a malformed one (a line break, a control character) is
 * refused with a sentence and never sent, and a token a server or proxy echoes back, in a
 * problem's detail or in a foreign body, is redacted from stderr and from --json output.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeDir, tempDir } from '../support/harness.ts';
import { assertExit, runCli, type CliResult } from './cli-process.ts';
import { answer, recordingServer, type RecordingServer } from './local-servers.ts';

const SECRET = 'secret7q-tok3n-5f1c9e2a7b3d4c6e';

/** Neither output holds the token, nor any piece of it of 6 characters or more. */
function assertNothingOf(r: CliResult, token: string): void {
  const out = r.stdout + r.stderr;
  for (const part of token.split(/[^\x21-\x7e]+/).filter((p) => p.length >= 6)) {
    for (let i = 0; i + 6 <= part.length; i++) assert.ok(!out.includes(part.slice(i, i + 6)), `${JSON.stringify(part.slice(i, i + 6))} shown:\n${out}`);
  }
}

void describe('the CLI never prints a token', () => {
  let work: string;
  let server: RecordingServer;

  before(async () => {
    work = tempDir('ferry-cli-token-');
    server = await recordingServer((req, res) => {
      const auth = req.headers.authorization ?? '';
      const token = auth.replace(/^Bearer /, '');
      // A careless proxy and a careless server, each echoing what it was sent.
      if (req.url?.startsWith('/v1/tenants')) return answer(res, 401, 'text/plain', `${token} is not a valid token`);
      answer(res, 403, 'application/problem+json', JSON.stringify({ code: 'FERRY_FORBIDDEN', status: 403, detail: `the token ${token} may not do this` }));
    });
  });

  after(async () => {
    await server.close();
    removeDir(work);
  });

  void test('a token with a line break, from --token, is malformed: a sentence, nothing of it, nothing sent', async () => {
    const token = `${SECRET}\nX-Evil: 1`;
    const r = await runCli(['--url', server.url, '--token', token, 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 2);
    assert.match(r.stderr, /the token from --token is malformed/);
    assertNothingOf(r, token);
    assert.equal(server.requests.length, 0);
  });

  void test('FERRY_TOKEN with a carriage return, a tab or a non-ASCII letter is malformed too', async () => {
    for (const token of [`${SECRET}\r`, `${SECRET}\tx`, `${SECRET}é`]) {
      const r = await runCli(['--url', server.url, 'ls'], { cwd: work, env: { FERRY_TOKEN: token }, killAfterMs: 30_000 });
      assertExit(r, 2);
      assert.match(r.stderr, /the token from FERRY_TOKEN is malformed/);
      assertNothingOf(r, token);
    }
    assert.equal(server.requests.length, 0);
  });

  void test('a token file with a line break inside is malformed: nothing of it is shown', async () => {
    const dataDir = join(work, 'data');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'token'), `${SECRET}\nsecond-line-9f8e7d6c\n`, { mode: 0o600 });
    const r = await runCli(['--data-dir', dataDir, '--url', server.url, 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 2);
    assert.match(r.stderr, /the token from the data folder .* is malformed/);
    assertNothingOf(r, `${SECRET} second-line-9f8e7d6c`);
    assert.equal(server.requests.length, 0);
  });

  void test('a token echoed back in a non-JSON body is not shown', async () => {
    const r = await runCli(['--url', server.url, '--token', SECRET, 'tenant', 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 1);
    assert.match(r.stderr, /HTTP 401/);
    assert.match(r.stderr, /is not a valid token/);
    assertNothingOf(r, SECRET);
  });

  void test("a token echoed back in a problem's detail is not shown, on stderr or in --json", async () => {
    const [plain, json] = await Promise.all([
      runCli(['--url', server.url, '--token', SECRET, 'ls'], { cwd: work, killAfterMs: 30_000 }),
      runCli(['--url', server.url, '--token', SECRET, '--json', 'ls'], { cwd: work, killAfterMs: 30_000 }),
    ]);
    for (const r of [plain, json]) {
      assertExit(r, 1);
      assert.match(r.stderr, /may not do this/);
      assertNothingOf(r, SECRET);
    }
    assert.equal((JSON.parse(json.stdout) as { code: string }).code, 'FERRY_FORBIDDEN');
  });
});
