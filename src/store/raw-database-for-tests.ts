/**
 * Tests only: the Store's Kysely handle, for tests that must write what the Store itself never
 * writes (a state the CHECK constraints refuse, a second holder the unique index refuses) or read a
 * table as it is. Nothing under src/ may import this file; the Store keeps `db` private so that
 * every query on Ferry's tables lives in src/store/.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { Store } from './store.ts';

export function rawDatabaseForTests(store: Store): Kysely<Database> {
  // `private` is a compile-time fence; this is its one sanctioned opening.
  return (store as unknown as { db: Kysely<Database> }).db;
}
