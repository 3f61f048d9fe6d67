/**
 * A token of the tokens file limited to tenants (`tenants: [shop]`) files, checks, reads, approves,
 * acts, cancels and closes issues for those tenants only; lists show only them; everything of
 * another tenant answers 404, exactly as what does not exist, and nothing changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, removeDir, request, sh, startFerry, tempDir, type Ferry, writeTokensFile } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const SHOP_OPERATOR = 'shop-operator-token-0123456789';
const SHOP_FILER = 'shop-filer-token-0123456789abc';
const SHOP_ADMIN = 'shop-admin-token-0123456789abc';

void describe('tokens limited to tenants', () => {
  let ferry: Ferry;
  let tokensDir: string;
  let blogMigration: string;
  let shopMigration: string;
  const as = (token: string, method: string, path: string, body?: unknown) => call(ferry.url, token, method, path, body);

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'shop-ops', role: 'operator', token: SHOP_OPERATOR, tenants: ['shop'] },
      { name: 'shop-ci', role: 'filer', token: SHOP_FILER, tenants: ['shop'] },
      { name: 'shop-admin', role: 'admin', token: SHOP_ADMIN, tenants: ['shop', 'shop-two'] },
    ]);
    ferry = await startFerry({ tokensFile });
    for (const id of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${id}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const blog = await ferry.api('POST', '/v1/migrations', request('blog', [{ name: 'a', run: sh('true') }], { issue: 'github:acme/platform#20' }));
    assert.equal(blog.status, 201, JSON.stringify(blog.body));
    blogMigration = blog.body.id;
    const shop = await as(SHOP_FILER, 'POST', '/v1/migrations', request('shop', [{ name: 'a', run: sh('true') }], { issue: 'github:acme/platform#21' }));
    assert.equal(shop.status, 201, JSON.stringify(shop.body));
    shopMigration = shop.body.id;
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('lists show only the tenants of the token and their migrations', async () => {
    const tenants = await as(SHOP_OPERATOR, 'GET', '/v1/tenants');
    assert.deepEqual(
      tenants.body.map((t: { id: string }) => t.id),
      ['shop'],
    );
    const all = await as(SHOP_OPERATOR, 'GET', '/v1/migrations');
    assert.deepEqual(
      all.body.map((m: { id: string }) => m.id),
      [shopMigration],
    );
    assert.deepEqual((await as(SHOP_OPERATOR, 'GET', '/v1/migrations?tenant=blog')).body, []);
    assert.deepEqual((await as(SHOP_OPERATOR, 'GET', `/v1/migrations?issue=${encodeURIComponent('github:acme/platform#20')}`)).body, []);
    const admin = await ferry.api('GET', '/v1/migrations');
    assert.equal(admin.body.length, 2, 'the admin token of the data folder is not limited');
  });

  void test("another tenant's migration answers 404 on every route, exactly as one that does not exist", async () => {
    const before = await ferry.api('GET', `/v1/migrations/${blogMigration}`);
    const missing = 'm-zzzzzz-00000000';
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['GET', '/logs', undefined],
      ['POST', '/approve', {}],
      ['POST', '/cancel', { reason: 'mine now' }],
      ['POST', '/actions', { action: 'abandon', reason: 'mine now' }],
    ] as const) {
      const other = assertProblem(await as(SHOP_OPERATOR, method, `/v1/migrations/${blogMigration}${suffix}`, body), 404, 'FERRY_NOT_FOUND');
      const none = assertProblem(await as(SHOP_OPERATOR, method, `/v1/migrations/${missing}${suffix}`, body), 404, 'FERRY_NOT_FOUND');
      assert.equal(
        (other.detail as string).replace(blogMigration, 'ID'),
        (none.detail as string).replace(missing, 'ID'),
        `${method} ${suffix}: same answer as for nothing`,
      );
    }
    assert.deepEqual((await ferry.api('GET', `/v1/migrations/${blogMigration}`)).body, before.body, 'nothing changed');
  });

  void test('its own migrations it reads and acts on', async () => {
    assert.equal((await as(SHOP_FILER, 'GET', `/v1/migrations/${shopMigration}`)).status, 200);
    const cancelled = await as(SHOP_OPERATOR, 'POST', `/v1/migrations/${shopMigration}/cancel`, { reason: 'not needed' });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  });

  void test('filing and checking for another tenant is refused (404) and stores nothing', async () => {
    const count = (await ferry.api('GET', '/v1/migrations')).body.length;
    for (const path of ['/v1/migrations', '/v1/migrations/check']) {
      const refused = assertProblem(
        await as(SHOP_FILER, 'POST', path, request('blog', [{ name: 'a', run: sh('true') }], { issue: 'github:acme/platform#22' })),
        404,
        'FERRY_NOT_FOUND',
      );
      const unknown = assertProblem(
        await as(SHOP_FILER, 'POST', path, request('nobody', [{ name: 'a', run: sh('true') }], { issue: 'github:acme/platform#22' })),
        404,
        'FERRY_NOT_FOUND',
      );
      assert.equal((refused.detail as string).replace('blog', 'T'), (unknown.detail as string).replace('nobody', 'T'));
    }
    assert.equal(
      (await as(SHOP_FILER, 'POST', '/v1/migrations/check', request('shop', [{ name: 'a', run: sh('true') }], { issue: 'github:acme/platform#22' }))).status,
      200,
    );
    assert.equal((await ferry.api('GET', '/v1/migrations')).body.length, count);
  });

  void test("it cannot close an issue that has another tenant's migrations", async () => {
    const ref = encodeURIComponent('github:acme/platform#20');
    assertProblem(await as(SHOP_OPERATOR, 'POST', `/v1/issues/${ref}/close`, {}), 404, 'FERRY_NOT_FOUND');
    // Mixed: one of shop, one of blog on the same issue.
    const mixed = 'github:acme/platform#23';
    assert.equal((await ferry.api('POST', '/v1/migrations', request('blog', [{ name: 'a', run: sh('true') }], { issue: mixed }))).status, 201);
    assert.equal((await as(SHOP_FILER, 'POST', '/v1/migrations', request('shop', [{ name: 'a', run: sh('true') }], { issue: mixed }))).status, 201);
    assertProblem(await as(SHOP_OPERATOR, 'POST', `/v1/issues/${encodeURIComponent(mixed)}/close`, {}), 404, 'FERRY_NOT_FOUND');
    const states = (await ferry.api('GET', `/v1/migrations?issue=${encodeURIComponent(mixed)}`)).body.map((m: { state: string }) => m.state);
    assert.deepEqual(states, ['filed', 'filed'], 'nothing was cancelled');
    assert.equal((await ferry.api('GET', `/v1/migrations/${blogMigration}`)).body.state, 'filed');
    // Its own issue it closes.
    const own = await as(SHOP_OPERATOR, 'POST', `/v1/issues/${encodeURIComponent('github:acme/platform#21')}/close`, {});
    assert.equal(own.status, 200, JSON.stringify(own.body));
  });

  void test('admin tenant routes: another tenant is 404, its own tenants work', async () => {
    const steady = (await ferry.api('GET', '/v1/tenants/blog')).body.steadyState;
    assertProblem(await as(SHOP_ADMIN, 'PUT', '/v1/tenants/blog', { steadyState: { cpu: '64', memory: '1Ti' } }), 404, 'FERRY_NOT_FOUND');
    assertProblem(await as(SHOP_ADMIN, 'PUT', '/v1/tenants/newcomer', { steadyState: { cpu: '1', memory: '1Gi' } }), 404, 'FERRY_NOT_FOUND');
    assertProblem(await as(SHOP_ADMIN, 'GET', '/v1/tenants/blog'), 404, 'FERRY_NOT_FOUND');
    assert.deepEqual((await ferry.api('GET', '/v1/tenants/blog')).body.steadyState, steady);
    assert.equal((await ferry.api('GET', '/v1/tenants/newcomer')).status, 404);
    const created = await as(SHOP_ADMIN, 'PUT', '/v1/tenants/shop-two', { steadyState: { cpu: '1', memory: '1Gi' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await as(SHOP_ADMIN, 'GET', '/v1/tenants/shop')).status, 200);
  });
});
