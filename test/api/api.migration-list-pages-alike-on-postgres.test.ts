/**
 * GET /v1/migrations pages the same on PostgreSQL as on SQLite: keyset paging by (createdAt, id)
 * in both orders, and a scoped token's pages hold only its tenants. Skips (loudly) without
 * PostgreSQL; fails under CI=true.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { call, removeDir, request, sh, startFerry, tempDir } from '../support/harness.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';

const SHOP = 'shop-filer-token-0123456789abcdef';

void test('the migration list pages by cursor on PostgreSQL, in both orders and for a scoped token', async (t) => {
  if (!(await requirePostgres(t))) return;
  const db = new TestDatabase();
  await db.ensure();
  const tokensDir = tempDir('ferry-tokens-');
  const tokensFile = join(tokensDir, 'tokens.yaml');
  writeFileSync(tokensFile, toYaml({ tokens: [{ name: 'shop-team', role: 'filer', token: SHOP, tenants: ['shop'] }] }), { mode: 0o600 });
  const ferry = await startFerry({ databaseUrl: db.url, tokensFile });
  try {
    for (const tn of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${tn}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await ferry.api('POST', '/v1/migrations', request(i % 2 ? 'blog' : 'shop', [{ name: 'noop', run: sh('true') }]))).body.id);
    const pages = async (order: string, token: string | null) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let n = 0; n < 10; n++) {
        const res: { body: Array<{ id: string }>; headers: Headers } = await call(
          ferry.url,
          token ?? ferry.token,
          'GET',
          `/v1/migrations?limit=2&order=${order}${cursor ? `&cursor=${cursor}` : ''}`,
        );
        seen.push(...res.body.map((m) => m.id));
        cursor = res.headers.get('x-ferry-next-cursor');
        if (!cursor) break;
      }
      return seen;
    };
    assert.deepEqual(await pages('asc', null), ids);
    assert.deepEqual(await pages('desc', null), [...ids].reverse());
    assert.deepEqual(
      await pages('asc', SHOP),
      ids.filter((_, i) => i % 2 === 0),
    );
  } finally {
    await ferry.stop();
    await db.drop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  }
});
