/** Open the store: SQLite through better-sqlite3 (embedded default) or PostgreSQL through pg. */
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
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
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    await migrateToLatest(db as Kysely<unknown>, 'sqlite');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return new Store(db, 'sqlite');
}

export async function openPostgresStore(connectionString: string, options: { schema?: string; max?: number } = {}): Promise<Store> {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db as Kysely<unknown>, 'postgres', options.schema);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return new Store(db, 'postgres');
}
