/**
 * openPostgresStore's `schema` option: two Ferry stores in two schemas of one database are
 * independent. Each must get its own tables and its own schema-migration bookkeeping.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { openPostgresStore } from '../../src/store/open-store.ts';
import type { Store } from '../../src/store/store.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';

const database = new TestDatabase();
after(() => database.drop());

void test('a second Ferry schema in the same database opens with its own tables', async (t) => {
  if (!(await requirePostgres(t))) return;
  const first = await database.freshSchema();
  const second = await database.freshSchema();
  const stores: Store[] = [];
  try {
    const a = await openPostgresStore(database.url, { schema: first, max: 2 });
    stores.push(a);
    await a.putTenant(
      'shop',
      { steadyState: { cpu: 1000, memory: 1024 }, data: '/srv/shop', runAs: null, allowRoot: false },
      { first: 200000, last: 299999 },
      new Date(),
    );
    const b = await openPostgresStore(database.url, { schema: second, max: 2 });
    stores.push(b);
    assert.deepEqual(await b.listTenants(), [], "the second schema does not see the first one's tenants");
    const tables = await database.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'ferry_schema_migration%' ORDER BY table_name",
      [second],
    );
    assert.deepEqual(
      tables.rows.map((r) => r.table_name),
      ['ferry_schema_migration', 'ferry_schema_migration_lock'],
    );
  } finally {
    for (const s of stores) await s.close();
  }
});
