/**
 * Real PostgreSQL for integration tests: 127.0.0.1:5432, user postgres, trust auth. Each test file
 * gets a fresh database (`ferry_test_<random>`), created through the `postgres` maintenance
 * database and dropped after; tests inside a file isolate themselves with a fresh schema each.
 *
 * When PostgreSQL is not reachable a test skips loudly, except in CI (CI=true), where it fails:
 * a CI run that silently skips the PostgreSQL store would prove nothing about it.
 */
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import pg from 'pg';

export const POSTGRES_ADDRESS = '127.0.0.1:5432';

/** Connection string for `database` on the test server. */
export function postgresUrl(database: string): string {
  return `postgres://postgres@${POSTGRES_ADDRESS}/${database}`;
}

async function withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresUrl(database), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

let probe: Promise<string | null> | null = null;

/** Null when PostgreSQL answers a query; otherwise why not. Asked once per process. */
export function postgresUnreachable(): Promise<string | null> {
  probe ??= withClient('postgres', async (client) => {
    await client.query('SELECT 1');
    return null;
  }).catch((err: unknown) => (err instanceof Error ? err.message || err.name : String(err)));
  return probe;
}

/**
 * True when PostgreSQL is reachable. Otherwise: in CI (CI=true) throws, failing the test; elsewhere
 * marks the test skipped with the reason, warns on the console, and returns false.
 */
export async function requirePostgres(t: TestContext): Promise<boolean> {
  const reason = await postgresUnreachable();
  if (reason === null) return true;
  const message = `PostgreSQL not reachable at ${POSTGRES_ADDRESS}: ${reason}`;
  if (process.env.CI === 'true') {
    throw new Error(`${message}. CI must run the PostgreSQL tests: start PostgreSQL on ${POSTGRES_ADDRESS} with user postgres and trust auth`);
  }
  console.warn(`\n!!! SKIPPED ${t.name}: ${message} (these tests FAIL when CI=true) !!!\n`);
  t.skip(message);
  return false;
}

/** A database of its own for one test file; created on first use, dropped by `drop()`. */
export class TestDatabase {
  readonly name = `ferry_test_${randomBytes(6).toString('hex')}`;
  private created: Promise<void> | null = null;

  get url(): string {
    return postgresUrl(this.name);
  }

  /** Create the database (once). */
  async ensure(): Promise<void> {
    this.created ??= withClient('postgres', async (client) => {
      await client.query(`CREATE DATABASE ${this.name}`);
    });
    await this.created;
  }

  /** A fresh, empty schema in this database, for one test. Pass it to openPostgresStore's `schema`. */
  async freshSchema(): Promise<string> {
    await this.ensure();
    const schema = `s_${randomBytes(6).toString('hex')}`;
    await withClient(this.name, async (client) => {
      await client.query(`CREATE SCHEMA ${schema}`);
    });
    return schema;
  }

  /** Run SQL in this database with its own connection (schema-qualify names, or set search_path). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    await this.ensure();
    return withClient(this.name, (client) => client.query<R>(text, values));
  }

  /** Drop the database if it was created; closes whatever connections are left. */
  async drop(): Promise<void> {
    if (this.created === null) return;
    const created = this.created;
    this.created = null;
    if (
      !(await created.then(
        () => true,
        () => false,
      ))
    )
      return;
    await withClient('postgres', async (client) => {
      await client.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
    });
  }
}
