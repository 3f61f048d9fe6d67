import { after } from 'node:test';
import { openPostgresStore } from '../../src/store/open-store.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';
import { defineMigrationPagesSuite } from './migration-pages-suite.ts';
import { defineStoreSuite, type OpenedStore } from './store-suite.ts';

// A fresh database for this file, a fresh schema in it for every test; dropped at the end.
const database = new TestDatabase();
after(() => database.drop());

async function open(): Promise<OpenedStore> {
  const schema = await database.freshSchema();
  const store = await openPostgresStore(database.url, { schema, max: 4 });
  return {
    store,
    async cleanup() {
      await store.close();
      await database.query(`DROP SCHEMA ${schema} CASCADE`);
    },
  };
}

defineStoreSuite('postgres', open, { ready: requirePostgres });
defineMigrationPagesSuite('postgres', open, { ready: requirePostgres });
