/** A second runner on the same data folder or database is refused: it would hold the first one's live jobs as lost. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { removeDir, startFerry, tempDir } from '../support/harness.ts';
import { TestDatabase, requirePostgres } from '../support/postgres.ts';

const db = new TestDatabase();
after(() => db.drop());

void test('a second Ferry on the same data folder is refused until the first stops', async () => {
  const dataDir = tempDir('ferry-lock-');
  try {
    const first = await startFerry({ dataDir });
    await assert.rejects(startFerry({ dataDir }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FERRY_CONFLICT');
      assert.match(err.message, /another Ferry \(pid \d+\) is running on the data folder/);
      return true;
    });
    // The refused start left the first one working.
    assert.equal((await first.api('GET', '/v1/tenants')).status, 200);
    await first.stop();
    const second = await startFerry({ dataDir });
    await second.stop();
  } finally {
    removeDir(dataDir);
  }
});

void test('a second Ferry on the same PostgreSQL database is refused', async (t) => {
  if (!(await requirePostgres(t))) return;
  await db.ensure();
  const dirs = [tempDir('ferry-lock-'), tempDir('ferry-lock-')];
  try {
    const first = await startFerry({ dataDir: dirs[0], databaseUrl: db.url });
    await assert.rejects(startFerry({ dataDir: dirs[1], databaseUrl: db.url }), /another Ferry runner is using this PostgreSQL database/);
    await first.stop();
    const second = await startFerry({ dataDir: dirs[1], databaseUrl: db.url });
    await second.stop();
  } finally {
    for (const d of dirs) removeDir(d!);
  }
});
