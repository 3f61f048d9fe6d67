import { sql, type Kysely } from 'kysely';
import type { SqlDialect } from '../dialect.ts';

/*
 * The database refuses a state it does not know, as well as the code. The lists are written out
 * here, not imported: a shipped schema migration must mean the same forever. A later state needs a
 * later migration that widens its check.
 */
const CHECKS: ReadonlyArray<{ table: string; column: string; values: readonly string[]; nullable: boolean }> = [
  {
    table: 'migrations',
    column: 'state',
    values: ['filed', 'approved', 'queued', 'running', 'held', 'succeeded', 'rejected', 'accepted-partial', 'abandoned', 'cancelled'],
    nullable: false,
  },
  { table: 'migrations', column: 'held_cause', values: ['exit-code', 'limit-exceeded', 'deadline', 'lost', 'cancelled', 'gate'], nullable: true },
  { table: 'migrations', column: 'next_restore', values: ['snapshot', 'wipe-step'], nullable: true },
  { table: 'attempts', column: 'cause', values: ['exit-code', 'limit-exceeded', 'deadline', 'lost', 'cancelled'], nullable: true },
  { table: 'artifacts', column: 'state', values: ['intended', 'created', 'removed'], nullable: false },
];

/** CHECK constraints on state columns (PostgreSQL); triggers that do the same in SQLite, which cannot add a CHECK to a table. */
export function stateChecks(dialect: SqlDialect) {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const c of CHECKS) {
        const name = `${c.table}_${c.column}_known`;
        const list = sql.join(c.values.map((v) => sql.lit(v)));
        const known = c.nullable ? sql`${sql.ref(c.column)} IS NULL OR ${sql.ref(c.column)} IN (${list})` : sql`${sql.ref(c.column)} IN (${list})`;
        if (dialect === 'postgres') {
          await sql`ALTER TABLE ${sql.table(c.table)} ADD CONSTRAINT ${sql.id(name)} CHECK (${known})`.execute(db);
          continue;
        }
        const message = sql.lit(`${c.table}.${c.column} must be one of ${c.values.join(', ')}${c.nullable ? ' or null' : ''}`);
        const guard = sql`WHEN NOT (${sql.raw(`NEW.${c.column}`)} IS NOT NULL AND ${sql.raw(`NEW.${c.column}`)} IN (${list}))${c.nullable ? sql.raw(` AND NEW.${c.column} IS NOT NULL`) : sql``}`;
        for (const when of ['INSERT', 'UPDATE']) {
          await sql`CREATE TRIGGER ${sql.id(`${name}_on_${when.toLowerCase()}`)} BEFORE ${sql.raw(when)} ON ${sql.table(c.table)} ${guard}
                    BEGIN SELECT RAISE(ABORT, ${message}); END`.execute(db);
        }
      }
    },
  };
}
