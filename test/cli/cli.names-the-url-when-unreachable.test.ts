/**
 * When nothing at --url is a Ferry server (nothing listens, the host does not exist, or something
 * else answers 404), the CLI says which URL it tried and what to check, not just `HTTP 404`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { describeConnectionFailure } from '../../src/cli/client.ts';
import { removeDir, tempDir } from '../support/harness.ts';
import { assertExit, closedPort, runCli } from './cli-process.ts';
import { answer, recordingServer, type RecordingServer } from './local-servers.ts';

void describe('an address that is not a Ferry server', () => {
  let work: string;
  let other: RecordingServer;

  before(async () => {
    work = tempDir('ferry-cli-unreachable-');
    // Some other web server: 404 for everything, as HTML, or as JSON that is not a problem.
    other = await recordingServer((req, res) => {
      if (req.url?.startsWith('/api/v1/migrations'))
        return answer(res, 404, 'application/json', '{"message":"Route GET:/api/v1/migrations not found","statusCode":404}');
      answer(res, 404, 'text/html', '<html><body><h1>Not Found</h1></body></html>');
    });
  });

  after(async () => {
    await other.close();
    removeDir(work);
  });

  void test('connection refused: names the URL, says nothing listens, asks about ferry serve and --url', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const r = await runCli(['--url', url, '--token', 'some-token-0123456789', 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 1);
    assert.match(r.stderr, new RegExp(`cannot reach Ferry at ${url}: connection refused`));
    assert.match(r.stderr, /`ferry serve` running/);
    assert.match(r.stderr, /--url/);
  });

  void test('a wrong path answering 404 with HTML names the URL and what to check', async () => {
    const r = await runCli(['--url', `${other.url}/wrong/prefix`, '--token', 'some-token-0123456789', 'ls'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 1);
    assert.notEqual(r.stderr.trim(), 'ferry: HTTP 404');
    assert.ok(r.stderr.includes(`${other.url}/wrong/prefix/v1/migrations`), r.stderr);
    assert.match(r.stderr, /HTTP 404.*not a Ferry API/);
    assert.match(r.stderr, /`ferry serve` running there/);
    assert.match(r.stderr, /--url/);
  });

  void test('a 404 with JSON that is not a Ferry problem is treated the same', async () => {
    const r = await runCli(['--url', `${other.url}/api`, '--token', 'some-token-0123456789', 'show', 'm-abc123-0123abcd'], { cwd: work, killAfterMs: 30_000 });
    assertExit(r, 1);
    assert.match(r.stderr, /HTTP 404.*not a Ferry API/);
    assert.ok(r.stderr.includes(`${other.url}/api/v1/migrations/m-abc123-0123abcd`), r.stderr);
  });

  void test('a host that does not resolve, or cannot be routed to, is named with what to check', () => {
    // As a pure function: a test must not send a DNS query or a packet off this host.
    for (const code of ['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']) {
      const sentence = describeConnectionFailure(Object.assign(new Error(`getaddrinfo ${code} ferry.internal`), { code }), 'http://ferry.internal:7070');
      assert.match(sentence, /^cannot reach Ferry at http:\/\/ferry\.internal:7070: /);
      assert.match(sentence, /--url \(or FERRY_URL\)/);
    }
    const other = describeConnectionFailure(Object.assign(new Error('Bearer abc'), { code: 'ESOMETHING' }), 'http://127.0.0.1:7070');
    assert.ok(!other.includes('Bearer'), 'the message of an unknown error is not repeated');
  });
});
