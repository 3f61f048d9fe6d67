/** The lifecycle suite with the multi-node store: PostgreSQL, a fresh database per test. */
import { after } from 'node:test';
import { TestDatabase, postgresUnreachable } from '../support/postgres.ts';
import { defineLifecycleSuite } from './lifecycle-suite.ts';
import { processKit, type SubstrateKit } from './substrate-kit.ts';

const databases: TestDatabase[] = [];
after(async () => {
  for (const db of databases) await db.drop();
});

const postgresKit: SubstrateKit = {
  ...processKit,
  name: 'process substrate with the PostgreSQL store',
  async available() {
    const unreachable = await postgresUnreachable();
    if (unreachable) return `PostgreSQL not reachable at 127.0.0.1:5432: ${unreachable}`;
    const db = new TestDatabase();
    await db.ensure();
    databases.push(db);
    return processKit.available();
  },
  options: () => ({ ...processKit.options(), databaseUrl: databases.at(-1)!.url }),
};

defineLifecycleSuite(postgresKit);
