/**
 * Numbered, append-only schema migrations, applied under Kysely's migration lock, each pending set
 * in one transaction. Ferry refuses to start on a database that has a migration it does not know
 * (written by a newer Ferry).
 */
import { Migrator, sql, type Kysely, type Migration } from 'kysely';
import { FerryError } from '../core/errors.ts';
import type { SqlDialect } from './dialect.ts';
import { initial } from './migrations/0001-initial.ts';
import { tracker } from './migrations/0002-tracker.ts';
import { tenantIdentity } from './migrations/0003-tenant-identity.ts';
import { stateChecks } from './migrations/0004-state-checks.ts';
import { nodes } from './migrations/0005-nodes.ts';
import { tenantPlacement } from './migrations/0006-tenant-placement.ts';
import { historyIndexes } from './migrations/0007-history-indexes.ts';

export function schemaMigrations(dialect: SqlDialect): Record<string, Migration> {
  return {
    '0001-initial': initial(dialect),
    '0002-tracker': tracker(dialect),
    '0003-tenant-identity': tenantIdentity(),
    '0004-state-checks': stateChecks(dialect),
    '0005-nodes': nodes(dialect),
    '0006-tenant-placement': tenantPlacement(),
    '0007-history-indexes': historyIndexes(),
  };
}

const TABLE = 'ferry_schema_migration';
const LOCK_TABLE = 'ferry_schema_migration_lock';

export async function migrateToLatest(db: Kysely<unknown>, dialect: SqlDialect, schema?: string): Promise<void> {
  const known = schemaMigrations(dialect);
  const applied = await appliedMigrations(db);
  const unknown = applied.filter((name) => !(name in known));
  if (unknown.length > 0) {
    throw new FerryError(
      'FERRY_SCHEMA_NEWER',
      `the database schema is newer than this Ferry (it has ${unknown.join(', ')}, this Ferry knows up to ${Object.keys(known).sort().at(-1)}); run the newer Ferry that wrote it`,
    );
  }
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => known },
    migrationTableName: TABLE,
    migrationLockTableName: LOCK_TABLE,
    // Without it Kysely looks for its tables in every schema and may find another Ferry's.
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw new FerryError('FERRY_INTERNAL', `schema migration failed: ${(error as Error).message ?? String(error)}`, {}, { cause: error });
}

async function appliedMigrations(db: Kysely<unknown>): Promise<string[]> {
  try {
    const r = await sql<{ name: string }>`SELECT name FROM ${sql.table(TABLE)}`.execute(db);
    return r.rows.map((row) => row.name);
  } catch {
    return []; // no table yet: a fresh database
  }
}
