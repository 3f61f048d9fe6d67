/**
 * GET /v1/tenants is paged like GET /v1/migrations: `limit` (default 100, at most 500), an opaque
 * cursor in `X-Ferry-Next-Cursor` (and `Link: rel="next"`) while there is more, none on the last
 * page; a scoped token's pages hold only its tenants, full; a bad limit, a bad cursor or an unknown
 * query field is a 400 with a sentence. `ferry tenant ls` follows the cursor to list them all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../cli/cli-process.ts';
import { call, removeDir, startFerry, tempDir, writeTokensFile, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const SCOPED = 'scoped-filer-token-0123456789abcdef';
// Registered out of order; listed by id.
const TENANTS = ['shop', 'blog', 'a-b', 'ab', 'wiki', 'mail', 'z9'];
const SORTED = [...TENANTS].sort();
const MINE = ['ab', 'mail', 'shop', 'z9'];

void describe('GET /v1/tenants pages', () => {
  let ferry: Ferry;
  let tokensDir: string;

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [{ name: 'scoped', role: 'filer', token: SCOPED, tenants: MINE }]);
    ferry = await startFerry({ tokensFile });
    for (const t of TENANTS) assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  const ids = (body: Array<{ id: string }>) => body.map((t) => t.id);

  void test('first page, next cursor, last page; without a limit, all seven (a page is 100)', async () => {
    const first = await ferry.api('GET', '/v1/tenants?limit=3');
    assert.equal(first.status, 200);
    assert.deepEqual(ids(first.body), SORTED.slice(0, 3));
    const cursor = first.headers.get('x-ferry-next-cursor');
    assert.ok(cursor, 'a cursor while there is more');
    assert.equal(first.headers.get('link'), `</v1/tenants?limit=3&cursor=${cursor}>; rel="next"`);
    const second = await ferry.api('GET', `/v1/tenants?limit=3&cursor=${cursor}`);
    assert.deepEqual(ids(second.body), SORTED.slice(3, 6));
    const last = await ferry.api('GET', `/v1/tenants?limit=3&cursor=${second.headers.get('x-ferry-next-cursor')}`);
    assert.deepEqual(ids(last.body), SORTED.slice(6));
    assert.equal(last.headers.get('x-ferry-next-cursor'), null, 'no cursor on the last page');
    assert.equal(last.headers.get('link'), null);
    const whole = await ferry.api('GET', '/v1/tenants');
    assert.deepEqual(ids(whole.body), SORTED);
    assert.equal(whole.headers.get('x-ferry-next-cursor'), null);
    assert.equal((await ferry.api('GET', '/v1/tenants?limit=500')).status, 200);
  });

  void test("a scoped token's pages hold only its tenants, full", async () => {
    const first = await call(ferry.url, SCOPED, 'GET', '/v1/tenants?limit=2');
    assert.deepEqual(ids(first.body), MINE.slice(0, 2));
    const next = await call(ferry.url, SCOPED, 'GET', `/v1/tenants?limit=2&cursor=${first.headers.get('x-ferry-next-cursor')}`);
    assert.deepEqual(ids(next.body), MINE.slice(2));
    assert.equal(next.headers.get('x-ferry-next-cursor'), null);
  });

  void test('a bad limit, cursor or query field is a 400 with a sentence', async () => {
    const migrationCursor = (await ferry.api('GET', '/v1/migrations?limit=1')).headers.get('x-ferry-next-cursor');
    const queries = ['limit=0', 'limit=501', 'limit=abc', 'limit=', 'cursor=garbage', `cursor=${'x'.repeat(401)}`, 'order=desc', 'tenant=shop'];
    if (migrationCursor) queries.push(`cursor=${migrationCursor}`);
    queries.push(`cursor=${Buffer.from(JSON.stringify({ t: 7 })).toString('base64url')}`);
    for (const q of queries) {
      const body = assertProblem(await ferry.api('GET', `/v1/tenants?${q}`), 400, 'FERRY_BAD_REQUEST');
      if (q.startsWith('cursor=') && q.length < 400) assert.match(body.detail as string, /cursor is not one this server gave .*start again without it/, q);
      if (q.startsWith('limit=')) assert.match(body.detail as string, /limit|number from 1 to 500/, q);
    }
  });

  void test('ferry tenant ls lists every tenant through the paged list', async () => {
    const listed = await runCli(['--url', ferry.url, '--token', ferry.token, 'tenant', 'ls', '--json'], { cwd: ferry.dataDir });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(ids(JSON.parse(listed.stdout) as Array<{ id: string }>), SORTED);
  });
});
