/**
 * Named prepared statements on PostgreSQL (src/store/pg-prepared.ts): the store's statements are
 * parsed once per connection and reused, at most `limit` texts get a name, DDL and transaction
 * control stay unnamed, a connection PostgreSQL closed is replaced by one that prepares again, and
 * a statement a schema change made stale ("cached plan must not change result type") costs at most
 * the one transaction that met it. Proved by the server's own `pg_prepared_statements` on a pool
 * of one connection, so that every query runs on the connection being looked at.
 */
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { openPostgresStore } from '../../src/store/open-store.ts';
import { withPreparedStatements, type PreparedPool } from '../../src/store/pg-prepared.ts';
import { rawDatabaseForTests } from '../../src/store/raw-database-for-tests.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';

const database = new TestDatabase();
after(() => database.drop());

interface Prepared {
  name: string;
  statement: string;
  runs: number;
}

/** What is prepared on the connection `db` runs on (the look itself is a statement too: excluded). */
async function preparedOn(db: Kysely<any>): Promise<Prepared[]> {
  const r = await sql<Prepared>`SELECT name, statement, (generic_plans + custom_plans)::int AS runs
    FROM pg_prepared_statements WHERE NOT from_sql AND statement NOT LIKE '%pg_prepared_statements%' ORDER BY statement`.execute(db);
  return r.rows;
}

async function backendPid(db: Kysely<any>): Promise<number> {
  return (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db)).rows[0]!.pid;
}

/** A pool of one connection in a fresh schema, naming from the start, as openPostgresStore's is after its migrations. */
async function openPool(t: TestContext, limit?: number): Promise<{ db: Kysely<any>; pool: pg.Pool; prepared: PreparedPool; schema: string }> {
  const schema = await database.freshSchema();
  const pool = new pg.Pool({ connectionString: database.url, max: 1, options: `-c search_path=${schema}` });
  pool.on('error', () => undefined);
  const prepared = withPreparedStatements(pool, limit === undefined ? {} : { limit });
  prepared.naming = true;
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: prepared }) });
  t.after(async () => {
    await db.destroy();
    await database.query(`DROP SCHEMA ${schema} CASCADE`);
  });
  return { db, pool, prepared, schema };
}

void test('the store prepares each statement once per connection and reuses it; its schema migrations run unnamed', async (t) => {
  if (!(await requirePostgres(t))) return;
  const schema = await database.freshSchema();
  const store = await openPostgresStore(database.url, { schema, max: 1 });
  t.after(async () => {
    await store.close();
    await database.query(`DROP SCHEMA ${schema} CASCADE`);
  });
  await store.putTenant(
    'shop',
    { steadyState: { cpu: 1000, memory: 1024 }, data: '/srv/shop', runAs: null, allowRoot: false },
    { first: 200000, last: 299999 },
    new Date(),
  );
  for (let i = 0; i < 5; i++) assert.equal((await store.getTenant('shop'))?.id, 'shop');

  const prepared = await preparedOn(rawDatabaseForTests(store));
  const getTenant = prepared.filter((p) => p.statement === 'select * from "tenants" where "id" = $1');
  assert.equal(getTenant.length, 1, 'getTenant has one prepared statement on the connection');
  assert.match(getTenant[0]!.name, /^ferry_[0-9a-f]{16}$/);
  assert.ok(getTenant[0]!.runs >= 5, `getTenant's statement ran ${getTenant[0]!.runs} times, parsed once`);
  assert.equal(new Set(prepared.map((p) => p.statement)).size, prepared.length, 'no text is prepared twice');
  assert.deepEqual(
    prepared.filter((p) => p.statement.includes('ferry_schema_migration')),
    [],
    'the schema migrations at open are not prepared',
  );
});

void test('at most `limit` distinct texts get a name; the rest run unnamed and still answer', async (t) => {
  if (!(await requirePostgres(t))) return;
  const { db, prepared } = await openPool(t, 3);
  for (let i = 0; i < 6; i++) {
    const r = await sql<{ n: number }>`SELECT ${sql.raw(String(i))} + ${10}::int AS n`.execute(db);
    assert.equal(r.rows[0]!.n, 10 + i);
  }
  assert.equal(prepared.named, 3);
  const statements = (await preparedOn(db)).map((p) => p.statement);
  assert.deepEqual(statements, ['SELECT 0 + $1::int AS n', 'SELECT 1 + $1::int AS n', 'SELECT 2 + $1::int AS n']);
});

void test('DDL, transaction control and texts of several statements are never named', async (t) => {
  if (!(await requirePostgres(t))) return;
  const { db, prepared } = await openPool(t);
  await sql`CREATE TABLE things (id int PRIMARY KEY, label text)`.execute(db);
  await db.transaction().execute(async (trx) => {
    await sql`INSERT INTO things VALUES (${1}, ${'one'})`.execute(trx);
    await sql`SELECT label FROM things WHERE id = ${1}`.execute(trx);
  });
  await sql.raw('UPDATE things SET label = label; SELECT count(*) FROM things').execute(db);
  assert.equal(prepared.named, 2);
  assert.deepEqual(
    (await preparedOn(db)).map((p) => p.statement),
    ['INSERT INTO things VALUES ($1, $2)', 'SELECT label FROM things WHERE id = $1'],
  );
});

void test('a connection PostgreSQL closed is replaced by one that prepares its statements again', async (t) => {
  if (!(await requirePostgres(t))) return;
  const { db, pool } = await openPool(t);
  const statement = 'SELECT $1::int * 2 AS n';
  const twice = async (n: number) => (await sql<{ n: number }>`SELECT ${n}::int * 2 AS n`.execute(db)).rows[0]!.n;
  assert.equal(await twice(1), 2);
  assert.equal(await twice(2), 4);
  const first = await backendPid(db);
  assert.deepEqual(
    (await preparedOn(db)).filter((p) => p.statement === statement).map((p) => p.runs),
    [2],
  );

  // Not events.once: it would reject on the 'error' the pool emits for that same connection.
  const removed = new Promise((resolve) => pool.once('remove', resolve));
  await database.query('SELECT pg_terminate_backend($1)', [first]);
  await removed; // the pool saw the idle connection end

  assert.equal(await twice(3), 6);
  assert.notEqual(await backendPid(db), first);
  assert.deepEqual(
    (await preparedOn(db)).filter((p) => p.statement === statement).map((p) => p.runs),
    [1],
    'prepared again on the new connection',
  );
});

void test('a statement a schema change made stale runs again outside a transaction, fails only the transaction that met it, and its connection is retired', async (t) => {
  if (!(await requirePostgres(t))) return;
  const { db, schema } = await openPool(t);
  await sql`CREATE TABLE wide (a int)`.execute(db);
  await sql`INSERT INTO wide VALUES (${1})`.execute(db);
  const all = () => sql<Record<string, unknown>>`SELECT * FROM wide WHERE a = ${1}`;

  // Another node, newer than this one, adds a column while this one runs.
  assert.deepEqual((await all().execute(db)).rows, [{ a: 1 }]);
  const before = await backendPid(db);
  await database.query(`ALTER TABLE ${schema}.wide ADD COLUMN b int`);
  assert.deepEqual((await all().execute(db)).rows, [{ a: 1, b: null }], 'outside a transaction: run again unnamed');
  const after = await backendPid(db);
  assert.notEqual(after, before, 'the connection that held the stale statement was closed');

  assert.deepEqual((await all().execute(db)).rows, [{ a: 1, b: null }]);
  await database.query(`ALTER TABLE ${schema}.wide ADD COLUMN c int`);
  await assert.rejects(
    db.transaction().execute((trx) => all().execute(trx)),
    (err: { code?: string }) => err.code === '0A000',
    'inside a transaction the error goes to its caller: the transaction is aborted',
  );
  const rows = await db.transaction().execute(async (trx) => (await all().execute(trx)).rows);
  assert.deepEqual(rows, [{ a: 1, b: null, c: null }], 'the next transaction runs on a fresh connection');
  assert.notEqual(await backendPid(db), after);
});
