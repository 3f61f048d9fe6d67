/**
 * A second runner on the same data folder, or as the same node of a PostgreSQL cluster, is refused:
 * it would hold the first one's live jobs as lost. Another node on the same database is welcome.
 */
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

void test('a second live process as the same node of a PostgreSQL database is refused; another node is not', async (t) => {
  if (!(await requirePostgres(t))) return;
  await db.ensure();
  const dirs = [tempDir('ferry-lock-'), tempDir('ferry-lock-'), tempDir('ferry-lock-')];
  try {
    const first = await startFerry({ dataDir: dirs[0], databaseUrl: db.url, node: 'lock-a' });
    try {
      await assert.rejects(startFerry({ dataDir: dirs[1], databaseUrl: db.url, node: 'lock-a' }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FERRY_NODE_TAKEN');
        assert.match(err.message, /node lock-a is already running: another live Ferry process holds it/);
        return true;
      });
      // Another node on the same database starts beside it.
      const other = await startFerry({ dataDir: dirs[2], databaseUrl: db.url, node: 'lock-b', token: first.token });
      await other.stop();
    } finally {
      await first.stop();
    }
    // Once the first stopped, its name is free.
    const second = await startFerry({ dataDir: dirs[1], databaseUrl: db.url, node: 'lock-a', token: first.token });
    await second.stop();
  } finally {
    for (const d of dirs) removeDir(d!);
  }
});

void test('SQLite holds one node: the same store started as another node is refused with a sentence', async () => {
  const dataDir = tempDir('ferry-lock-');
  try {
    const first = await startFerry({ dataDir, node: 'solo' });
    await first.stop();
    await assert.rejects(startFerry({ dataDir, node: 'other' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FERRY_NODE_TAKEN');
      assert.match(err.message, /this SQLite store belongs to node solo, and SQLite holds one node/);
      return true;
    });
  } finally {
    removeDir(dataDir);
  }
});

void test('SQLite started without --node keeps the node name it was first started with (the host name may change)', async () => {
  const dataDir = tempDir('ferry-lock-');
  try {
    const first = await startFerry({ dataDir, node: 'solo' });
    await first.stop();
    const again = await startFerry({ dataDir });
    try {
      const nodes = (await again.api('GET', '/v1/nodes')).body.nodes as Array<{ name: string; state: string }>;
      assert.deepEqual(
        nodes.map((n) => [n.name, n.state]),
        [['solo', 'up']],
      );
    } finally {
      await again.stop();
    }
  } finally {
    removeDir(dataDir);
  }
});
