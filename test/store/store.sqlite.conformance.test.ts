import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/open-store.ts';
import { removeDir, tempDir } from '../support/harness.ts';
import { defineMigrationPagesSuite } from './migration-pages-suite.ts';
import { defineStoreSuite, type OpenedStore } from './store-suite.ts';

// A real SQLite file in a temporary folder per test, with the pragmas Ferry uses (WAL, full sync).
async function open(): Promise<OpenedStore> {
  const dir = tempDir('ferry-store-sqlite-');
  try {
    const store = await openSqliteStore(join(dir, 'ferry.db'));
    return {
      store,
      async cleanup() {
        try {
          await store.close();
        } finally {
          removeDir(dir);
        }
      },
    };
  } catch (err) {
    removeDir(dir);
    throw err;
  }
}

defineStoreSuite('sqlite', open);
defineMigrationPagesSuite('sqlite', open);
