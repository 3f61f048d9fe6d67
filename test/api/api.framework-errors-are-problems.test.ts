/**
 * Every error is application/problem+json with a FERRY_* code, those that Fastify and Node's HTTP
 * parser produce included: a long issue ref (up to 300 characters are accepted at filing) is
 * closable URL-encoded; a param past the bound is a 414 problem; a request Node cannot parse (a
 * chunked DELETE that also has a Content-Length, a bad chunk) is a 400 problem, then the
 * connection closes; a bad %-escape is a 400 problem.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { removeDir, request, sh, startFerry, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

/** Send raw bytes; resolve with everything the server sent until it closed the connection. */
function rawExchange(url: string, text: string): Promise<{ text: string; closedByServer: boolean }> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let out = '';
    const guard = setTimeout(() => {
      socket.destroy();
      resolve({ text: out, closedByServer: false });
    }, 10_000);
    socket.on('data', (d: Buffer) => (out += d.toString('utf8')));
    socket.on('error', reject);
    socket.on('end', () => {
      clearTimeout(guard);
      socket.destroy();
      resolve({ text: out, closedByServer: true });
    });
    socket.write(text);
  });
}

/** The last HTTP response in `text` as {status, headers, body}. */
function lastResponse(text: string): { status: number; body: unknown; headers: Headers } {
  const starts = [...text.matchAll(/(?:^|\r\n)(HTTP\/1\.1 \d{3} )/g)];
  const start = (starts.at(-1)?.index ?? 0) + (text.startsWith('HTTP/1.1 ', starts.at(-1)?.index ?? 0) ? 0 : 2);
  const [head = '', body = ''] = text.slice(start).split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = new Headers();
  for (const line of lines) {
    const i = line.indexOf(':');
    headers.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  let parsed: unknown = body;
  try {
    parsed = JSON.parse(body);
  } catch {
    // not JSON: the assertion says so
  }
  return { status: Number(statusLine.split(' ')[1]), body: parsed, headers };
}

void describe('framework errors are problem+json', () => {
  let ferry: Ferry;
  before(async () => {
    ferry = await startFerry();
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  });
  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('an issue ref of 300 characters is filed, then closed through its URL-encoded ref', async () => {
    // GitLab groups nest: 96 segments of two characters, joined by slashes, are 287 characters.
    const padded = `gitlab:${Array.from({ length: 96 }, (_, i) => `g${i % 10}`).join('/')}#12345`;
    assert.equal(padded.length, 300);
    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'a', run: sh('true') }], { issue: padded }));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    assert.equal(filed.body.issue, padded);
    const encoded = encodeURIComponent(padded);
    assert.ok(encoded.length > 400, 'well past Fastify default maxParamLength of 100');
    const closed = await ferry.api('POST', `/v1/issues/${encoded}/close`, {});
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    assert.deepEqual(closed.body.cancelled, [filed.body.id]);
    assert.equal((await ferry.api('GET', `/v1/migrations/${filed.body.id}`)).body.state, 'cancelled');
  });

  void test('a param past the bound is a 414 problem with a code', async () => {
    const long = encodeURIComponent(`github:acme/${'x'.repeat(2000)}#1`);
    const res = await ferry.api('POST', `/v1/issues/${long}/close`, {});
    const problem = assertProblem(res, 414, 'FERRY_URI_TOO_LONG');
    assert.match(problem.detail as string, /300 characters/);
  });

  void test('a bad %-escape in the URL is a 400 problem', async () => {
    assertProblem(await ferry.api('GET', '/v1/migrations/%E0%A4%A'), 400, 'FERRY_BAD_REQUEST');
  });

  void test('a chunked DELETE that also sends a Content-Length is a 400 problem, then the connection closes', async () => {
    const { text, closedByServer } = await rawExchange(
      ferry.url,
      `DELETE /v1/tenants/shop HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ferry.token}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    const res = lastResponse(text);
    assertProblem(res, 400, 'FERRY_BAD_REQUEST');
    assert.equal(res.headers.get('connection'), 'close', text);
    assert.ok(closedByServer, 'the server closes the connection after a parse error');
    assert.equal((await ferry.api('GET', '/v1/tenants/shop')).status, 200, 'nothing was deleted');
  });

  void test('a bad chunk is a 400 problem, then the connection closes', async () => {
    const { text, closedByServer } = await rawExchange(
      ferry.url,
      `POST /v1/migrations/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    );
    const res = lastResponse(text);
    assert.ok(res.status === 400 || res.status === 401, text);
    assertProblem(res, res.status);
    assert.ok(closedByServer);
  });

  void test('a request whose headers never finish is answered 408 as a problem, and closed (headersTimeout)', async () => {
    // rawExchange gives up after 10 s of silence; the server's bound is 10 s: allow for both.
    const { port, hostname } = new URL(ferry.url);
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      let out = '';
      const guard = setTimeout(() => {
        socket.destroy();
        resolve(out);
      }, 40_000);
      socket.on('data', (d: Buffer) => (out += d.toString('utf8')));
      socket.on('error', reject);
      socket.on('end', () => {
        clearTimeout(guard);
        socket.destroy();
        resolve(out);
      });
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    });
    assertProblem(lastResponse(text), 408, 'FERRY_REQUEST_TIMEOUT');
  });

  void test('headers past the size bound are a 431 problem', async () => {
    const { text } = await rawExchange(ferry.url, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assertProblem(lastResponse(text), 431, 'FERRY_HEADERS_TOO_LARGE');
  });
});
