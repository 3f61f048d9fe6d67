/**
 * An answer that is not Ferry's problem+json (a proxy's 502 page, a text 409, an HTML 200) ends
 * with the status and a short, single-line excerpt of the body, control characters stripped, and
 * the usual exit code for the status: never a JSON parse error.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { excerpt } from '../../src/cli/client.ts';
import { removeDir, tempDir } from '../support/harness.ts';
import { assertExit, runCli, type CliResult } from './cli-process.ts';
import { answer, recordingServer, type RecordingServer } from './local-servers.ts';

/** An nginx-like 502 page, long, with terminal escapes and a bell in it. */
const PAGE_502 = `<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<p>proxy-upstream-down \u001b[31mred\u001b[0m \u0007 \u001b]0;title\u0007</p>\r\n${'<!-- padding -->\n'.repeat(400)}<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;

void describe('non-JSON error answers', () => {
  let work: string;
  let proxy: RecordingServer;

  before(async () => {
    work = tempDir('ferry-cli-nonjson-');
    proxy = await recordingServer((req, res) => {
      const path = req.url ?? '';
      if (path.startsWith('/v1/migrations/m-abc123-0123abcd/approve')) return answer(res, 409, 'text/plain', 'conflict-from-proxy\nsecond line');
      if (path.startsWith('/v1/migrations/check')) return answer(res, 413, 'text/html', '<h1>413 Request Entity Too Large</h1>');
      if (path.startsWith('/v1/tenants')) return answer(res, 200, 'text/html', '<!doctype html><title>login-portal</title>');
      answer(res, 502, 'text/html', PAGE_502);
    });
  });

  after(async () => {
    await proxy.close();
    removeDir(work);
  });

  const ferry = (...args: string[]): Promise<CliResult> =>
    runCli(['--url', proxy.url, '--token', 'some-token-0123456789', ...args], { cwd: work, killAfterMs: 30_000 });

  function assertOneCleanLine(r: CliResult): string {
    assert.doesNotMatch(r.stderr, /Unexpected token|is not valid JSON|SyntaxError|JSON\.parse/, r.stderr);
    assert.equal(r.stderr.split('\n').length, 2, `one line:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr.slice(0, -1), /[\u0000-\u001f\u007f]/, 'no control characters');
    assert.ok(r.stderr.length < 600, `bounded, got ${r.stderr.length} characters`);
    return r.stderr;
  }

  void test("a proxy's 502 page: status, URL and an excerpt, on one bounded line, exit 1", async () => {
    const r = await ferry('ls');
    assertExit(r, 1);
    const line = assertOneCleanLine(r);
    assert.match(line, /HTTP 502 Bad Gateway/);
    assert.ok(line.includes(`${proxy.url}/v1/migrations`), line);
    assert.match(line, /proxy-upstream-down/);
  });

  void test('the log command reports a 502 page the same way', async () => {
    const r = await ferry('logs', 'm-abc123-0123abcd');
    assertExit(r, 1);
    const line = assertOneCleanLine(r);
    assert.match(line, /HTTP 502/);
    assert.match(line, /proxy-upstream-down/);
  });

  void test('the exit code follows the status: a text 409 exits 4, an HTML 413 exits 2', async () => {
    const conflict = await ferry('approve', 'm-abc123-0123abcd');
    assertExit(conflict, 4);
    assert.match(assertOneCleanLine(conflict), /HTTP 409.*conflict-from-proxy second line/);
    const doc = join(work, 'doc.yaml');
    writeFileSync(doc, 'tenant: shop\n');
    const tooLarge = await ferry('check', doc);
    assertExit(tooLarge, 2);
    assert.match(assertOneCleanLine(tooLarge), /HTTP 413.*413 Request Entity Too Large/);
  });

  void test('a 200 that is not JSON is named as such, with what to check', async () => {
    const r = await ferry('tenant', 'ls');
    assertExit(r, 1);
    const line = assertOneCleanLine(r);
    assert.match(line, /HTTP 200.*not JSON.*login-portal/);
    assert.match(line, /--url/);
  });

  void test('the excerpt strips tags, escapes and control characters, and redacts the token before cutting', () => {
    assert.equal(excerpt('<b>a</b>\u001b[1mb\u0007\r\nc\u202e', { html: true }), 'a b c');
    const token = 'tok-0123456789abcdef';
    const cut = excerpt(`${'x'.repeat(150)}${token}`, { token, max: 160 });
    assert.ok(!cut.includes('tok-01'), cut);
    assert.ok([...excerpt('y'.repeat(5000))].length <= 160);
  });
});
