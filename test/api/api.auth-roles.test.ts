/**
 * Bearer tokens and roles: filer (file, check, read) < operator (approve, act, cancel, close
 * issues) < admin (tenants). A refused request is a problem answer and changes nothing.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { call, removeDir, request, sh, startFerry, tempDir, type Ferry, writeTokensFile } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const FILER = 'filer-token-0123456789abcdef';
const OPERATOR = 'operator-token-0123456789abcdef';
const OTHER_ADMIN = 'admin2-token-0123456789abcdef';

void describe('auth and roles', () => {
  let ferry: Ferry;
  let tokensDir: string;
  let migration: string;

  const as = (token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    call(ferry.url, token, method, path, body, headers);

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'fiona', role: 'filer', token: FILER },
      { name: 'otto', role: 'operator', token: OPERATOR },
      { name: 'ada', role: 'admin', token: OTHER_ADMIN },
    ]);
    ferry = await startFerry({ tokensFile });
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const filed = await as(FILER, 'POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }]));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    assert.equal(filed.body.filedBy, 'fiona', 'the filer is recorded by the name of its token');
    migration = filed.body.id;
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('the admin token is written to <dataDir>/token with mode 0600', () => {
    const st = statSync(join(ferry.dataDir, 'token'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(ferry.token.length >= 16);
  });

  void test('no token is 401, on reads and writes', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/tenants', undefined],
      ['GET', '/v1/migrations', undefined],
      ['GET', `/v1/migrations/${migration}`, undefined],
      ['POST', '/v1/migrations/check', request('shop', [{ name: 'a', run: sh('true') }])],
      ['PUT', '/v1/tenants/evil', { steadyState: { cpu: '100', memory: '1Ti' } }],
      ['POST', `/v1/migrations/${migration}/approve`, {}],
    ] as const) {
      const body401 = assertProblem(await as(null, method, path, body), 401, 'FERRY_UNAUTHENTICATED');
      assert.match(body401.detail as string, /Bearer/);
    }
  });

  void test('an unknown or malformed token is 401', async () => {
    assertProblem(await as('not-a-token-anyone-issued', 'GET', '/v1/tenants'), 401, 'FERRY_UNAUTHENTICATED');
    assertProblem(
      await as(null, 'GET', '/v1/tenants', undefined, { authorization: `Basic ${Buffer.from(`x:${FILER}`).toString('base64')}` }),
      401,
      'FERRY_UNAUTHENTICATED',
    );
    assertProblem(await as(null, 'GET', '/v1/tenants', undefined, { authorization: 'Bearer' }), 401, 'FERRY_UNAUTHENTICATED');
    assertProblem(await as(null, 'GET', '/v1/tenants', undefined, { authorization: `Bearer ${FILER}x` }), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test('a filer can read, check and file', async () => {
    assert.equal((await as(FILER, 'GET', '/v1/tenants')).status, 200);
    assert.equal((await as(FILER, 'GET', '/v1/tenants/shop')).status, 200);
    assert.equal((await as(FILER, 'GET', '/v1/migrations')).status, 200);
    assert.equal((await as(FILER, 'GET', `/v1/migrations/${migration}`)).status, 200);
    assert.equal((await as(FILER, 'POST', '/v1/migrations/check', request('shop', [{ name: 'a', run: sh('true') }]))).status, 200);
  });

  void test('a filer cannot approve, act, cancel, close issues or put tenants (403), and nothing changes', async () => {
    const before = await ferry.api('GET', `/v1/migrations/${migration}`);
    for (const [method, path, body] of [
      ['POST', `/v1/migrations/${migration}/approve`, {}],
      ['POST', `/v1/migrations/${migration}/cancel`, {}],
      ['POST', `/v1/migrations/${migration}/actions`, { action: 'abandon', reason: 'no' }],
      ['POST', `/v1/issues/${encodeURIComponent('github:acme/platform#1')}/close`, {}],
      ['PUT', '/v1/tenants/shop', { steadyState: { cpu: '64', memory: '1Ti' } }],
    ] as const) {
      const problem = assertProblem(await as(FILER, method, path, body), 403, 'FERRY_FORBIDDEN');
      assert.match(problem.detail as string, /filer/);
    }
    assert.deepEqual((await ferry.api('GET', `/v1/migrations/${migration}`)).body, before.body);
    assert.deepEqual((await ferry.api('GET', '/v1/tenants/shop')).body.steadyState, { cpu: 1000, memory: 1024 ** 3 });
  });

  void test('an operator cannot put tenants (403)', async () => {
    assertProblem(await as(OPERATOR, 'PUT', '/v1/tenants/shop', { steadyState: { cpu: '64', memory: '1Ti' } }), 403, 'FERRY_FORBIDDEN');
    assertProblem(await as(OPERATOR, 'PUT', '/v1/tenants/newcomer', { steadyState: { cpu: '1', memory: '1Gi' } }), 403, 'FERRY_FORBIDDEN');
    assert.equal((await ferry.api('GET', '/v1/tenants/newcomer')).status, 404);
    assert.deepEqual((await ferry.api('GET', '/v1/tenants/shop')).body.steadyState, { cpu: 1000, memory: 1024 ** 3 });
  });

  void test('an operator can approve and cancel, recorded under its name', async () => {
    const approved = await as(OPERATOR, 'POST', `/v1/migrations/${migration}/approve`, {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.ok(approved.body.events.some((e: { kind: string; actor: string }) => e.kind === 'approve' && e.actor === 'otto'));

    const other = await as(FILER, 'POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }], { issue: 'github:acme/platform#2' }));
    assert.equal(other.status, 201);
    const cancelled = await as(OPERATOR, 'POST', `/v1/migrations/${other.body.id}/cancel`, { reason: 'not needed' });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(cancelled.body.state, 'cancelled');
  });

  void test('an admin (data-folder token or tokens file) can put tenants', async () => {
    const created = await ferry.api('PUT', '/v1/tenants/blog', { steadyState: { cpu: '250m', memory: '512Mi' } });
    assert.equal(created.status, 201);
    const updated = await as(OTHER_ADMIN, 'PUT', '/v1/tenants/blog', { steadyState: { cpu: '500m', memory: '512Mi' } });
    assert.equal(updated.status, 200);
    assert.deepEqual(updated.body.steadyState, { cpu: 500, memory: 512 * 1024 ** 2 });
  });
});
