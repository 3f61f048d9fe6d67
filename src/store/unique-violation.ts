/** Recognising a unique-index violation, the same way on SQLite and PostgreSQL. */

/** A unique index, as each engine names it in its error. */
export interface UniqueIndex {
  /** The index name; PostgreSQL reports it as `constraint`. */
  readonly name: string;
  /** SQLite names the indexed columns instead (`table.column`), not the index. */
  readonly sqliteColumns: string;
}

/** True when `err` is a unique violation; of `index` only, when given. */
export function isUniqueViolation(err: unknown, index?: UniqueIndex): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown };
  if (e.code === '23505') return index === undefined || e.constraint === index.name;
  if (e.code !== 'SQLITE_CONSTRAINT_UNIQUE') return false;
  return index === undefined || (typeof e.message === 'string' && e.message.includes(index.sqliteColumns));
}
