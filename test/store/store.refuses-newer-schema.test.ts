/**
 * A store refuses to open a database whose schema was written by a newer Ferry (STYLE.md §8), and
 * opening an up-to-date database again is harmless: schema migrations are idempotent.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { FerryError } from '../../src/core/errors.ts';
import { openPostgresStore, openSqliteStore } from '../../src/store/open-store.ts';
import { schemaMigrations } from '../../src/store/schema-migrations.ts';
import type { Store } from '../../src/store/store.ts';
import { removeDir, tempDir } from '../support/harness.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';

// Kysely's migration table as Ferry names it (schema-migrations.ts): columns name and timestamp.
const TABLE = 'ferry_schema_migration';
const FUTURE = '9999-from-the-future';
const KNOWN = Object.keys(schemaMigrations('sqlite')).sort();

async function assertRefusesNewer(open: () => Promise<Store>): Promise<void> {
  let caught: unknown = null;
  let opened: Store | null = null;
  try {
    opened = await open();
  } catch (err) {
    caught = err;
  } finally {
    await opened?.close();
  }
  assert.ok(caught !== null, 'opening a database with a schema from the future must fail');
  assert.ok(caught instanceof FerryError, `expected a FerryError, got ${String(caught)}`);
  assert.match(caught.message, /schema is newer/);
  assert.ok(caught.message.includes(FUTURE), 'the message names the unknown schema migration');
}

void describe('SQLite', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) removeDir(dir);
  });

  void test('reopening an up-to-date database twice keeps its data and schema', async () => {
    const dir = tempDir('ferry-schema-sqlite-');
    dirs.push(dir);
    const path = join(dir, 'ferry.db');
    const first = await openSqliteStore(path);
    await first.putTenant(
      'shop',
      { steadyState: { cpu: 1000, memory: 1024 }, data: '/srv/shop', runAs: null, allowRoot: false },
      { first: 200000, last: 299999 },
      new Date(),
    );
    await first.close();
    for (let i = 0; i < 2; i++) {
      const again = await openSqliteStore(path);
      try {
        assert.deepEqual(
          (await again.listTenants()).map((t) => t.id),
          ['shop'],
        );
      } finally {
        await again.close();
      }
    }
    const db = new SQLite(path, { readonly: true });
    try {
      const names = db.prepare(`SELECT name FROM ${TABLE} ORDER BY name`).all() as Array<{ name: string }>;
      assert.deepEqual(
        names.map((r) => r.name),
        KNOWN,
        'each schema migration recorded once',
      );
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  });

  void test('a database with a schema migration this Ferry does not know is refused', async () => {
    const dir = tempDir('ferry-schema-sqlite-');
    dirs.push(dir);
    const path = join(dir, 'ferry.db');
    await (await openSqliteStore(path)).close();
    const db = new SQLite(path);
    try {
      const columns = (db.prepare(`PRAGMA table_info(${TABLE})`).all() as Array<{ name: string }>).map((c) => c.name).sort();
      assert.deepEqual(columns, ['name', 'timestamp'], 'the migration table has the columns this test writes');
      db.prepare(`INSERT INTO ${TABLE} (name, timestamp) VALUES (?, ?)`).run(FUTURE, new Date().toISOString());
    } finally {
      db.close();
    }
    await assertRefusesNewer(() => openSqliteStore(path));
  });
});

void describe('PostgreSQL', () => {
  const database = new TestDatabase();
  const schemas: string[] = [];
  // Each test's schema is dropped after it: Ferry's schema migrator looks for its tables in every
  // schema of the database (see store.postgres.schemas-are-independent.test.ts).
  afterEach(async () => {
    for (const schema of schemas.splice(0)) await database.query(`DROP SCHEMA ${schema} CASCADE`);
  });
  after(() => database.drop());

  void test('reopening an up-to-date database twice keeps its data and schema', async (t) => {
    if (!(await requirePostgres(t))) return;
    const schema = await database.freshSchema();
    schemas.push(schema);
    const first = await openPostgresStore(database.url, { schema, max: 2 });
    await first.putTenant(
      'shop',
      { steadyState: { cpu: 1000, memory: 1024 }, data: '/srv/shop', runAs: null, allowRoot: false },
      { first: 200000, last: 299999 },
      new Date(),
    );
    await first.close();
    for (let i = 0; i < 2; i++) {
      const again = await openPostgresStore(database.url, { schema, max: 2 });
      try {
        assert.deepEqual(
          (await again.listTenants()).map((x) => x.id),
          ['shop'],
        );
      } finally {
        await again.close();
      }
    }
    const rows = await database.query<{ name: string }>(`SELECT name FROM ${schema}.${TABLE} ORDER BY name`);
    assert.deepEqual(
      rows.rows.map((r) => r.name),
      KNOWN,
      'each schema migration recorded once',
    );
  });

  void test('a database with a schema migration this Ferry does not know is refused', async (t) => {
    if (!(await requirePostgres(t))) return;
    const schema = await database.freshSchema();
    schemas.push(schema);
    await (await openPostgresStore(database.url, { schema, max: 2 })).close();
    const columns = await database.query<{ column_name: string }>(
      'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY column_name',
      [schema, TABLE],
    );
    assert.deepEqual(
      columns.rows.map((c) => c.column_name),
      ['name', 'timestamp'],
      'the migration table has the columns this test writes',
    );
    await database.query(`INSERT INTO ${schema}.${TABLE} (name, timestamp) VALUES ($1, $2)`, [FUTURE, new Date().toISOString()]);
    await assertRefusesNewer(() => openPostgresStore(database.url, { schema, max: 2 }));
  });
});
