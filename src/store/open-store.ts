/** Open the store: SQLite through better-sqlite3 (embedded default) or PostgreSQL through pg. */
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect } from 'kysely';
import { DurableKysely, GroupCommitDriver, groupCommitDialect } from './group-commit.ts';
import pg from 'pg';
import { KEEPALIVE_OPTIONS } from './node-session.ts';
import { withPreparedStatements } from './pg-prepared.ts';
import { migrateToLatest } from './schema-migrations.ts';
import type { Database } from './schema.ts';
import { Store } from './store.ts';

export async function openSqliteStore(path: string): Promise<Store> {
  const sqlite = new SQLite(path);
  // WAL with full sync: a committed transition survives a power cut, and readers never block the writer.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  // Transactions of one event-loop turn share one commit and one fsync (group-commit.ts).
  const driver = new GroupCommitDriver(withStatementCache(sqlite));
  const db = new DurableKysely<Database>({ dialect: groupCommitDialect(driver) }, driver);
  try {
    await migrateToLatest(db as unknown as Kysely<unknown>, 'sqlite');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  driver.grouping = true;
  return new Store(db, 'sqlite');
}

/**
 * Kysely's SQLite driver prepares every query afresh; preparing is a good part of a query's cost.
 * Statements are reused per SQL text (Kysely runs one query at a time on this connection, so a
 * cached statement is never in use twice). Bounded: the least recently added is dropped first.
 */
function withStatementCache(sqlite: SQLite.Database, size = 256): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = sqlite.prepare.bind(sqlite);
  return new Proxy(sqlite, {
    get(target, prop, receiver) {
      if (prop !== 'prepare') {
        const value = Reflect.get(target, prop, receiver) as unknown;
        // Native methods must run on the real database object, not on the proxy.
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return (source: string) => {
        let stmt = cache.get(source);
        if (!stmt) {
          stmt = prepare(source);
          if (cache.size >= size) cache.delete(cache.keys().next().value as string);
          cache.set(source, stmt);
        }
        return stmt;
      };
    },
  });
}

export async function openPostgresStore(connectionString: string, options: { schema?: string; max?: number } = {}): Promise<Store> {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    // A node cut off from PostgreSQL gets an error rather than a query that waits for ever.
    query_timeout: 30_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    options: `${options.schema ? `-c search_path=${options.schema} ` : ''}${KEEPALIVE_OPTIONS}`,
  });
  // An idle pooled connection that PostgreSQL closes (a restart, a DROP ... WITH (FORCE)) is
  // reported on the pool; unhandled, that event would end the process. The next query reconnects.
  pool.on('error', () => undefined);
  // Nor may a connection the pool has lent out (inside a transaction, between two queries) when its
  // link drops: its next query fails instead, and that error goes to the caller.
  pool.on('connect', (client) => client.on('error', () => undefined));
  // Named prepared statements (pg-prepared.ts), as the SQLite store caches its statements. Not while
  // the schema migrates: a statement prepared before a migration's DDL could go stale on its connection.
  const prepared = withPreparedStatements(pool);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: prepared }) });
  try {
    await migrateToLatest(db as Kysely<unknown>, 'postgres', options.schema);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  prepared.naming = true;
  return new Store(db, 'postgres', { connectionString, schema: options.schema });
}
