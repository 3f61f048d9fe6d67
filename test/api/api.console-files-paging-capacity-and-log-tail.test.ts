/**
 * What the console needs of the API, without a browser: its files at `/` and `/console/*` with
 * their content types, an ETag, gzip and a strict CSP; GET /v1/migrations paged with `limit`
 * (default 100, at most 500) and an opaque cursor, in either order, scoped tokens included;
 * GET /v1/capacity; and `?tail=BYTES` on a log, which sends only its end.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { call, removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const SHOP = 'shop-filer-token-0123456789abcdef';

/** A raw GET (fetch would decompress and hide content-encoding). */
function rawGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('console files, paging, capacity and log tail', () => {
  let ferry: Ferry;
  let tokensDir: string;
  const ids: string[] = [];

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = join(tokensDir, 'tokens.yaml');
    writeFileSync(tokensFile, toYaml({ tokens: [{ name: 'shop-team', role: 'filer', token: SHOP, tenants: ['shop'] }] }), { mode: 0o600 });
    ferry = await startFerry({ tokensFile });
    for (const t of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    for (let i = 0; i < 7; i++) {
      const filed = await ferry.api(
        'POST',
        '/v1/migrations',
        request(i % 2 === 0 ? 'shop' : 'blog', [{ name: 'noop', run: sh('true') }], { issue: `github:acme/platform#${i + 1}` }),
      );
      assert.equal(filed.status, 201);
      ids.push(filed.body.id);
    }
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('the console page and its files are served with types, ETag, gzip and a strict CSP', async () => {
    const page = await rawGet(`${ferry.url}/`, { 'accept-encoding': 'gzip' });
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['content-encoding'], 'gzip');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['cache-control'], 'no-cache');
    const html = gunzipSync(page.body).toString('utf8');
    assert.match(html, /<script type="module" src="\/console\/app.js"><\/script>/);
    assert.doesNotMatch(html, /<script>(?!<)/, 'no inline script');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing fetched from elsewhere');
    const again = await rawGet(`${ferry.url}/`, { 'if-none-match': String(page.headers.etag) });
    assert.equal(again.status, 304);
    const js = await rawGet(`${ferry.url}/console/app.js`);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    const css = await rawGet(`${ferry.url}/console/console.css`);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    assertProblem(await call(ferry.url, null, 'GET', '/console/nope.js'), 404, 'FERRY_NOT_FOUND');
    assertProblem(await call(ferry.url, null, 'GET', '/console/..%2Fapi%2Fauth.ts'), 404, 'FERRY_NOT_FOUND');
  });

  void test('the first load of the console is well under 200 KB compressed', async () => {
    const html = (await rawGet(`${ferry.url}/`, { 'accept-encoding': 'gzip' })).body.length;
    const names = ['app.js', 'api.js', 'dom.js', 'console.css', 'page-list.js', 'page-migration.js', 'page-tenants.js', 'page-issue.js', 'page-signin.js'];
    let total = html;
    for (const n of names) total += (await rawGet(`${ferry.url}/console/${n}`, { 'accept-encoding': 'gzip' })).body.length;
    assert.ok(total < 50 * 1024, `first load ${total} bytes compressed`);
  });

  void test('GET /v1/migrations is paged by limit and an opaque cursor, in either order', async () => {
    const first = await ferry.api('GET', '/v1/migrations?limit=3');
    assert.deepEqual(
      first.body.map((m: { id: string }) => m.id),
      ids.slice(0, 3),
    );
    const cursor = first.headers.get('x-ferry-next-cursor');
    assert.ok(cursor);
    assert.match(first.headers.get('link') ?? '', /rel="next"/);
    const second = await ferry.api('GET', `/v1/migrations?limit=3&cursor=${cursor}`);
    assert.deepEqual(
      second.body.map((m: { id: string }) => m.id),
      ids.slice(3, 6),
    );
    const third = await ferry.api('GET', `/v1/migrations?limit=3&cursor=${second.headers.get('x-ferry-next-cursor')}`);
    assert.deepEqual(
      third.body.map((m: { id: string }) => m.id),
      ids.slice(6),
    );
    assert.equal(third.headers.get('x-ferry-next-cursor'), null, 'no cursor after the last page');
    const newest = await ferry.api('GET', '/v1/migrations?limit=4&order=desc');
    assert.deepEqual(
      newest.body.map((m: { id: string }) => m.id),
      [...ids].reverse().slice(0, 4),
    );
    const rest = await ferry.api('GET', `/v1/migrations?limit=4&order=desc&cursor=${newest.headers.get('x-ferry-next-cursor')}`);
    assert.deepEqual(
      rest.body.map((m: { id: string }) => m.id),
      [...ids].reverse().slice(4),
    );
    // Without a limit: 100, as before paging for small stores.
    assert.equal((await ferry.api('GET', '/v1/migrations')).body.length, 7);
  });

  void test("a scoped token's pages hold only its tenants, full", async () => {
    const shopIds = ids.filter((_, i) => i % 2 === 0);
    const page = await call(ferry.url, SHOP, 'GET', '/v1/migrations?limit=2');
    assert.deepEqual(
      page.body.map((m: { id: string }) => m.id),
      shopIds.slice(0, 2),
    );
    const next = await call(ferry.url, SHOP, 'GET', `/v1/migrations?limit=2&cursor=${page.headers.get('x-ferry-next-cursor')}`);
    assert.deepEqual(
      next.body.map((m: { id: string }) => m.id),
      shopIds.slice(2, 4),
    );
  });

  void test('a bad limit, cursor or order is a 400 with a sentence', async () => {
    for (const q of [
      'limit=0',
      'limit=501',
      'limit=abc',
      'cursor=garbage',
      'order=sideways',
      `order=desc&cursor=${(await ferry.api('GET', '/v1/migrations?limit=1')).headers.get('x-ferry-next-cursor')}`,
    ]) {
      assertProblem(await ferry.api('GET', `/v1/migrations?${q}`), 400, 'FERRY_BAD_REQUEST');
    }
    assert.equal((await ferry.api('GET', '/v1/migrations?limit=500')).status, 200);
  });

  void test('GET /v1/capacity gives the capacity and what running peaks use', async () => {
    const cap = await ferry.api('GET', '/v1/capacity');
    assert.equal(cap.status, 200);
    assert.ok(cap.body.capacity.cpu > 0 && cap.body.capacity.memory > 0);
    assert.deepEqual(cap.body.used, {});
    assertProblem(await call(ferry.url, null, 'GET', '/v1/capacity'), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test('?tail=BYTES sends only the end of a log, from a whole line, and says how much it left out', async () => {
    const script = 'i=0; while [ $i -lt 2000 ]; do echo "line $i of the log"; i=$((i+1)); done';
    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'talk', run: sh(script) }], { issue: 'github:acme/platform#50' }));
    assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
    await waitFor('the migration to succeed', async () => (await ferry.api('GET', `/v1/migrations/${filed.body.id}`)).body.state === 'succeeded');
    const whole = await ferry.api('GET', `/v1/migrations/${filed.body.id}/logs`);
    const tail = await ferry.api('GET', `/v1/migrations/${filed.body.id}/logs?tail=200`);
    assert.equal(tail.status, 200);
    assert.ok(tail.body.length <= 200 && tail.body.length > 100, `about 200 bytes: ${tail.body.length}`);
    assert.ok(whole.body.endsWith(tail.body));
    assert.match(tail.body, /^line \d+ of the log\n/, 'starts at a whole line');
    assert.equal(Number(tail.headers.get('x-ferry-log-skipped')), Buffer.byteLength(whole.body) - 200);
    const download = await ferry.api('GET', `/v1/migrations/${filed.body.id}/logs?download=true`);
    assert.match(download.headers.get('content-disposition') ?? '', /^attachment; filename="m-[a-z0-9-]+-attempt-1\.log"$/);
    assert.equal(download.body, whole.body);
  });

  void test('?tail= whose cut falls inside a secret of two lines still masks it (the tail is read from before the cut)', async () => {
    const script = 'i=0; while [ $i -lt 500 ]; do echo "filler line $i"; i=$((i+1)); done; echo "the secret is $DB_PASSWORD"; echo end';
    const doc = request('shop', [{ name: 'talk', run: sh(script) }], {
      issue: 'github:acme/platform#51',
      env: { DB_PASSWORD: { secret: 'hunter2-first-line\nsecond-half-of-it' } },
    });
    const filed = await ferry.api('POST', '/v1/migrations', doc);
    assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
    await waitFor('the migration to succeed', async () => (await ferry.api('GET', `/v1/migrations/${filed.body.id}`)).body.state === 'succeeded');
    const whole = (await ferry.api('GET', `/v1/migrations/${filed.body.id}/logs`)).body as string;
    const masked = whole.indexOf('the secret is ') + 'the secret is '.length;
    assert.ok(masked > 'the secret is '.length && !whole.includes('hunter2') && !whole.includes('second-half'), 'the whole log masks it');
    // Every cut from just before the secret's line to inside its mask.
    for (let back = Buffer.byteLength(whole) - masked + 4; back > Buffer.byteLength(whole) - masked - 6; back--) {
      const tail = (await ferry.api('GET', `/v1/migrations/${filed.body.id}/logs?tail=${back}`)).body as string;
      assert.ok(!tail.includes('hunter2') && !tail.includes('second-half'), `tail=${back} shows part of the secret: ${JSON.stringify(tail)}`);
    }
  });
});
