/**
 * The console's session rules, without a browser: POST /v1/session trades a token for an HttpOnly,
 * SameSite=Strict cookie and a CSRF token; the cookie authenticates as the token would (same role,
 * same tenant scope); a state change with the cookie needs X-Ferry-CSRF and a same-origin (or no)
 * Origin; a bearer token needs neither; DELETE /v1/session ends the session; an idle session ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SessionStore } from '../../src/api/session.ts';
import { call, removeDir, request, sh, startFerry, tempDir, type Ferry, writeTokensFile } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const OPERATOR = 'operator-token-0123456789abcdef';
const SHOP_FILER = 'shop-filer-token-0123456789abcdef';

interface Session {
  cookie: string;
  csrf: string;
}

void describe('console sessions and CSRF', () => {
  let ferry: Ferry;
  let tokensDir: string;
  let blogMigration: string;
  let shopMigration: string;
  let origin: string;

  const withCookie = (s: Session | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    call(ferry.url, null, method, path, body, { ...(s ? { cookie: s.cookie } : {}), ...headers });

  async function signIn(token: string): Promise<Session> {
    const res = await call(ferry.url, null, 'POST', '/v1/session', { token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const setCookie = res.headers.get('set-cookie') ?? '';
    const cookie = setCookie.split(';')[0] ?? '';
    return { cookie, csrf: res.body.csrf };
  }

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'otto', role: 'operator', token: OPERATOR },
      { name: 'shop-team', role: 'filer', token: SHOP_FILER, tenants: ['shop'] },
    ]);
    ferry = await startFerry({ tokensFile });
    origin = ferry.url;
    for (const t of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    blogMigration = (await ferry.api('POST', '/v1/migrations', request('blog', [{ name: 'noop', run: sh('true') }]))).body.id;
    shopMigration = (await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }]))).body.id;
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('a good token gets an HttpOnly, SameSite=Strict cookie with a random id and a CSRF token; the token is not echoed', async () => {
    const res = await call(ferry.url, null, 'POST', '/v1/session', { token: OPERATOR });
    assert.equal(res.status, 200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^ferry_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    assert.ok(!setCookie.includes(OPERATOR));
    assert.deepEqual({ ...res.body, csrf: typeof res.body.csrf }, { name: 'otto', role: 'operator', tenants: null, csrf: 'string' });
    assert.ok(res.body.csrf.length >= 40);
    assert.ok(!JSON.stringify(res.body).includes(OPERATOR));
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });

  void test('a wrong or malformed token is 401 (or 422) and sets no cookie', async () => {
    const wrong = await call(ferry.url, null, 'POST', '/v1/session', { token: 'not-a-token-anyone-issued' });
    assertProblem(wrong, 401, 'FERRY_UNAUTHENTICATED');
    assert.equal(wrong.headers.get('set-cookie'), null);
    const spaced = await call(ferry.url, null, 'POST', '/v1/session', { token: `${OPERATOR} x` });
    assertProblem(spaced, 422);
    assert.ok(!JSON.stringify(spaced.body).includes(OPERATOR), 'a refused token is never echoed');
  });

  void test('sign-in from a page of another origin is refused (login CSRF)', async () => {
    const res = await call(ferry.url, null, 'POST', '/v1/session', { token: OPERATOR }, { origin: 'http://evil.example' });
    assertProblem(res, 403, 'FERRY_CSRF');
    assert.equal(res.headers.get('set-cookie'), null);
  });

  void test('the cookie reads as the token does, and GET /v1/session says who it is', async () => {
    const s = await signIn(OPERATOR);
    const me = await withCookie(s, 'GET', '/v1/session');
    assert.deepEqual(me.body, { name: 'otto', role: 'operator', tenants: null, csrf: s.csrf });
    assert.equal((await withCookie(s, 'GET', '/v1/migrations')).body.length, 2);
    assertProblem(await withCookie(null, 'GET', '/v1/migrations'), 401, 'FERRY_UNAUTHENTICATED');
    assertProblem(await withCookie({ cookie: 'ferry_session=forged', csrf: '' }, 'GET', '/v1/migrations'), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test("a scoped token's session sees only its tenants, as the token does", async () => {
    const s = await signIn(SHOP_FILER);
    const list = await withCookie(s, 'GET', '/v1/migrations');
    assert.deepEqual(
      list.body.map((m: { id: string }) => m.id),
      [shopMigration],
    );
    assertProblem(await withCookie(s, 'GET', `/v1/migrations/${blogMigration}`), 404, 'FERRY_NOT_FOUND');
    const me = await withCookie(s, 'GET', '/v1/session');
    assert.deepEqual(me.body.tenants, ['shop']);
  });

  void test('a state change with the cookie needs the CSRF header and a same-origin or absent Origin', async () => {
    const s = await signIn(OPERATOR);
    const path = `/v1/migrations/${blogMigration}/cancel`;
    const noHeader = assertProblem(await withCookie(s, 'POST', path, { reason: 'x' }), 403, 'FERRY_CSRF');
    assert.match(noHeader.detail as string, /X-Ferry-CSRF/);
    assertProblem(await withCookie(s, 'POST', path, { reason: 'x' }, { 'x-ferry-csrf': `${s.csrf.slice(1)}x` }), 403, 'FERRY_CSRF');
    assertProblem(await withCookie(s, 'POST', path, { reason: 'x' }, { 'x-ferry-csrf': s.csrf, origin: 'http://evil.example' }), 403, 'FERRY_CSRF');
    assertProblem(await withCookie(s, 'POST', path, { reason: 'x' }, { 'x-ferry-csrf': s.csrf, origin: 'null' }), 403, 'FERRY_CSRF');
    // Another session's CSRF token does not fit this one.
    const other = await signIn(OPERATOR);
    assertProblem(await withCookie(s, 'POST', path, { reason: 'x' }, { 'x-ferry-csrf': other.csrf }), 403, 'FERRY_CSRF');
    assert.equal((await ferry.api('GET', `/v1/migrations/${blogMigration}`)).body.state, 'filed', 'nothing changed');
    const ok = await withCookie(s, 'POST', path, { reason: 'from the console' }, { 'x-ferry-csrf': s.csrf, origin });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.state, 'cancelled');
    assert.ok(
      ok.body.events.some((e: { kind: string; actor: string }) => e.kind === 'cancel' && e.actor === 'otto'),
      'recorded under the token name',
    );
  });

  void test('a filer session with the CSRF header is still refused by its role', async () => {
    const s = await signIn(SHOP_FILER);
    assertProblem(await withCookie(s, 'POST', `/v1/migrations/${shopMigration}/approve`, {}, { 'x-ferry-csrf': s.csrf, origin }), 403, 'FERRY_FORBIDDEN');
  });

  void test('a bearer token needs no CSRF header, even with a cookie beside it', async () => {
    const s = await signIn(SHOP_FILER);
    const res = await call(ferry.url, ferry.token, 'POST', '/v1/migrations/check', request('shop', [{ name: 'a', run: sh('true') }]), { cookie: s.cookie });
    assert.equal(res.status, 200, 'the bearer token, not the (filer) cookie, decides');
  });

  void test('DELETE /v1/session needs the CSRF header, then ends the session', async () => {
    const s = await signIn(OPERATOR);
    assertProblem(await withCookie(s, 'DELETE', '/v1/session'), 403, 'FERRY_CSRF');
    const out = await withCookie(s, 'DELETE', '/v1/session', undefined, { 'x-ferry-csrf': s.csrf });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /^ferry_session=; .*Max-Age=0/);
    assertProblem(await withCookie(s, 'GET', '/v1/migrations'), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test('a session ends after its idle time, and a request keeps it alive', () => {
    let now = 0;
    const sessions = new SessionStore({ idleMs: 1000, now: () => now });
    const { id } = sessions.create({ name: 'otto', role: 'operator', tenants: null });
    now = 900;
    assert.ok(sessions.get(id));
    now = 1800;
    assert.ok(sessions.get(id), 'touched at 900, so alive at 1800');
    now = 2801;
    assert.equal(sessions.get(id), null);
    assert.equal(sessions.size, 0);
  });
});
