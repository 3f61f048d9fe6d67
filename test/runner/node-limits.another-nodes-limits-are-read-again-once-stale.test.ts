/**
 * The gate judges a tenant of another node against the limits that node registered, kept for
 * NODE_LIMITS_FRESH_MS and then read again: a node that joins again with a smaller capacity (a
 * restart) makes the gate refuse what no longer fits once the kept limits are stale. This node's
 * own limits, and those of a node that never registered, are this node's live ones. On
 * PostgreSQL (several nodes), with a fake clock.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Resources } from '../../src/core/types.ts';
import { runGate, type GateLimits } from '../../src/runner/gate.ts';
import { NODE_LIMITS_FRESH_MS, NodeLimits } from '../../src/runner/node-limits.ts';
import { openPostgresStore } from '../../src/store/open-store.ts';
import type { Store } from '../../src/store/store.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';

const database = new TestDatabase();
after(() => database.drop());

const GiB = 1024 ** 3;
const OWN: GateLimits = { capacity: { cpu: 500, memory: GiB }, enforced: ['cpu', 'memory'] };
const PEAK: Resources = { cpu: 2000, memory: GiB };

function register(store: Store, name: string, cpu: number) {
  return store.registerNode({
    name,
    substrate: 'process',
    capacity: { cpu, memory: 8 * GiB },
    enforced: ['cpu', 'memory'],
    tenantHome: { substrate: 'process', tenantsDir: '/var/lib/ferry/tenants', ferryPaths: [] },
    now: new Date(),
  });
}

void test('limits another node registered are kept while fresh, then read again; this node and an unknown node use its own live limits', async (t) => {
  if (!(await requirePostgres(t))) return;
  const schema = await database.freshSchema();
  const store = await openPostgresStore(database.url, { schema, max: 2 });
  t.after(async () => {
    await store.close();
    await database.query(`DROP SCHEMA ${schema} CASCADE`);
  });
  await register(store, 'n1', 500);
  await register(store, 'n2', 4000);
  await store.putTenant(
    'shop',
    { steadyState: { cpu: 1000, memory: GiB }, data: '/srv/shop', runAs: null, allowRoot: false, node: 'n2' },
    { first: 200000, last: 299999 },
    new Date(),
  );

  let clock = 0;
  const limits = new NodeLimits({ store, self: 'n1', own: () => OWN, clock: () => clock });
  const gate = () => runGate(store, limits.of, 'shop', PEAK, new Date());

  assert.deepEqual((await limits.of('n2')).capacity, { cpu: 4000, memory: 8 * GiB }, "n2's registered capacity");
  assert.equal((await gate()).verdict.ok, true, 'a 2-cpu peak fits n2 of 4 cpu (not this node of 500m)');

  // n2 joins again with 1 cpu: within the freshness the kept limits still answer.
  await register(store, 'n2', 1000);
  clock += NODE_LIMITS_FRESH_MS - 1;
  assert.equal((await limits.of('n2')).capacity.cpu, 4000, 'kept while fresh');

  // Stale: read again, and the gate refuses what no longer fits n2.
  clock += 1;
  assert.equal((await limits.of('n2')).capacity.cpu, 1000, 'read again once stale');
  const refused = await gate();
  assert.equal(refused.verdict.ok, false);
  assert.deepEqual(
    refused.verdict.reasons.map((r) => r.code),
    ['PEAK_EXCEEDS_CAPACITY'],
  );
  assert.equal(refused.tenant?.id, 'shop', 'the gate answers with the tenant it judged');

  // This node's own limits and a node that never registered: this node's live limits, never kept.
  assert.equal(await limits.of('n1'), OWN);
  assert.equal(await limits.of(null), OWN);
  assert.equal(await limits.of('n3'), OWN, 'an unregistered node: the limits of this node');
  await register(store, 'n3', 3000);
  clock += NODE_LIMITS_FRESH_MS;
  assert.equal((await limits.of('n3')).capacity.cpu, 3000, 'n3 once it registered and the kept answer went stale');
});
