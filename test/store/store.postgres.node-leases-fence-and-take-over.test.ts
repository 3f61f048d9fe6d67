/**
 * Node leases in the store, on PostgreSQL: a lease renews only while it is its node's; a node whose
 * lease ran out is taken over (lost, epoch bumped, its running migrations held `lost` naming it),
 * every later write of the old lease is refused (FERRY_FENCED), and once back it records its job's
 * real outcome once, as an event, without moving the migration.
 */
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import { admit } from '../../src/core/admission.ts';
import { FerryError } from '../../src/core/errors.ts';
import type { MigrationRequest, Resources } from '../../src/core/types.ts';
import { openPostgresStore } from '../../src/store/open-store.ts';
import { rawDatabaseForTests } from '../../src/store/raw-database-for-tests.ts';
import type { NodeLease } from '../../src/store/records.ts';
import type { Store } from '../../src/store/store.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';
import { sql } from 'kysely';

const database = new TestDatabase();
after(() => database.drop());

const STEADY: Resources = { cpu: 1000, memory: 1024 ** 3 };
const CAPACITY: Resources = { cpu: 4000, memory: 8 * 1024 ** 3 };

async function open(t: TestContext): Promise<Store | null> {
  if (!(await requirePostgres(t))) return null;
  const schema = await database.freshSchema();
  const store = await openPostgresStore(database.url, { schema, max: 4 });
  t.after(async () => {
    await store.close();
    await database.query(`DROP SCHEMA ${schema} CASCADE`);
  });
  return store;
}

function register(store: Store, name: string) {
  return store.registerNode({
    name,
    substrate: 'process',
    capacity: CAPACITY,
    enforced: ['cpu', 'memory'],
    tenantHome: { substrate: 'process', tenantsDir: '/var/lib/ferry/tenants', ferryPaths: [] },
    now: new Date(),
  });
}

/** Make `name`'s last renewal `ms` older than it is, on the database's clock. */
async function age(store: Store, name: string, ms: number): Promise<void> {
  await sql`UPDATE nodes SET last_seen_ms = last_seen_ms - ${ms} WHERE name = ${name}`.execute(rawDatabaseForTests(store));
}

/** A migration of tenant `tenant` (living on `node`) running attempt 1 started by `lease`. */
async function runningOn(store: Store, lease: NodeLease, id: string, tenant: string): Promise<void> {
  const now = new Date();
  await store.putTenant(
    tenant,
    { steadyState: STEADY, data: `/srv/${tenant}`, runAs: null, allowRoot: false, node: lease.name },
    { first: 200000, last: 299999 },
    now,
  );
  const request: MigrationRequest = {
    issue: 'github:acme/platform#1',
    tenant,
    peak: STEADY,
    steps: [{ name: 'copy', run: ['true'] }],
    snapshot: 'never',
    env: {},
  };
  const verdict = admit({ tenantId: tenant, peak: STEADY, tenant: { id: tenant, steadyState: STEADY }, capacity: {}, now });
  await store.insertMigration({ id, issue: request.issue, tenant, request, verdict, filedBy: 'alice' }, { actor: 'alice', kind: 'file' }, now);
  await store.transitions({ id, from: 'filed', moves: [{ event: { actor: 'bob', kind: 'approve' } }, { event: { actor: 'ferry', kind: 'gate-pass' } }], now });
  await store.startAttempt({
    id,
    number: 1,
    fromStep: 0,
    logRef: `/logs/${id}/attempt-1.log`,
    limitsEnforced: true,
    isolated: true,
    verdict,
    event: { actor: 'ferry' },
    now,
    firstJob: { step: 0, ref: `job-${id}` },
    artifacts: [{ kind: 'log', ref: `/logs/${id}/attempt-1.log` }],
    lease,
  });
}

async function fenced(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof FerryError && err.code === 'FERRY_FENCED');
}

void test('each registration is a new epoch; only the current lease renews', async (t) => {
  const store = await open(t);
  if (!store) return;
  const first = await register(store, 'a');
  assert.equal(first.lease.epoch, 1);
  assert.equal(first.previous, null);
  assert.equal(await store.renewNodeLease(first.lease), true);
  const second = await register(store, 'a');
  assert.equal(second.lease.epoch, 2);
  assert.equal(await store.renewNodeLease(first.lease), false, 'the lease of an earlier registration does not renew');
  assert.equal(await store.renewNodeLease(second.lease), true);
  await store.leaveNode(second.lease);
  assert.equal((await store.getNode('a'))?.state, 'left');
  assert.equal(await store.renewNodeLease(second.lease), false, 'a node that left renews nothing');
});

void test('a node whose lease ran out is taken over: lost, its running migration held lost naming it, nothing else touched', async (t) => {
  const store = await open(t);
  if (!store) return;
  const a = (await register(store, 'a')).lease;
  const b = (await register(store, 'b')).lease;
  await runningOn(store, b, 'm-b-00000001', 'shop');
  await runningOn(store, a, 'm-a-00000001', 'blog');

  assert.deepEqual(await store.takeOverLostNodes(a, 60_000, new Date()), [], 'a node seen just now is not lost');
  await age(store, 'b', 120_000);
  const taken = await store.takeOverLostNodes(a, 60_000, new Date());
  assert.equal(taken.length, 1);
  assert.equal(taken[0]?.node, 'b');
  assert.deepEqual(taken[0]?.held, ['m-b-00000001']);

  const node = await store.getNode('b');
  assert.equal(node?.state, 'lost');
  assert.equal(node?.epoch, b.epoch + 1);
  const held = await store.requireMigration('m-b-00000001');
  assert.equal(held.state, 'held');
  assert.equal(held.heldCause, 'lost');
  assert.match(held.heldDetail ?? '', /node b was lost: it last renewed its lease at \d{4}-\d\d-\d\dT/);
  const attempt = await store.getAttempt('m-b-00000001', 1);
  assert.equal(attempt?.cause, 'lost');
  assert.ok(attempt?.takenOverAt);
  assert.equal((await store.requireMigration('m-a-00000001')).state, 'running', "the taker's own migration runs on");
  assert.deepEqual(await store.takeOverLostNodes(a, 60_000, new Date()), [], 'a lost node is taken over once');
});

void test('after a takeover every write of the old lease is refused: outcome, next step, new attempt', async (t) => {
  const store = await open(t);
  if (!store) return;
  const a = (await register(store, 'a')).lease;
  const b = (await register(store, 'b')).lease;
  await runningOn(store, b, 'm-b-00000001', 'shop');
  await age(store, 'b', 120_000);
  await store.takeOverLostNodes(a, 60_000, new Date());
  const now = new Date();

  await fenced(
    store.finishAttempt({
      id: 'm-b-00000001',
      number: 1,
      attempt: { exitCode: 0, cause: null, detail: 'all steps succeeded' },
      event: { actor: 'ferry', kind: 'succeed' },
      now,
      lease: b,
    }),
  );
  await fenced(store.beginStep({ migrationId: 'm-b-00000001', issue: 'github:acme/platform#1', number: 1, step: 1, ref: 'job-2', now, lease: b }));
  await assert.rejects(runningOn(store, b, 'm-b-00000002', 'news'), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_FENCED');
  assert.equal((await store.requireMigration('m-b-00000001')).state, 'held', 'the takeover stands');
  assert.equal((await store.listEvents('m-b-00000001')).filter((e) => e.kind === 'fail').length, 1, 'one outcome, recorded once');
});

void test('a node that is not live itself takes nobody over', async (t) => {
  const store = await open(t);
  if (!store) return;
  const a = (await register(store, 'a')).lease;
  await register(store, 'b');
  await register(store, 'a'); // a's first lease is stale now
  await age(store, 'b', 120_000);
  await fenced(store.takeOverLostNodes(a, 60_000, new Date()));
  assert.equal((await store.getNode('b'))?.state, 'up');
});

void test('back with a new lease, the node records its job’s real outcome once, as an event; the migration stays held', async (t) => {
  const store = await open(t);
  if (!store) return;
  const a = (await register(store, 'a')).lease;
  const b = (await register(store, 'b')).lease;
  await runningOn(store, b, 'm-b-00000001', 'shop');
  await age(store, 'b', 120_000);
  await store.takeOverLostNodes(a, 60_000, new Date());
  const outcome = { step: 0, exitCode: 0, signal: null, cause: null, detail: 'step 1: exited 0' };
  await fenced(store.recordLateOutcome(b, 'm-b-00000001', 1, outcome, new Date()));

  const back = (await register(store, 'b')).lease;
  assert.deepEqual(
    (await store.listTakenOverAttempts('b')).map((x) => x.migrationId),
    ['m-b-00000001'],
  );
  assert.equal(await store.recordLateOutcome(a, 'm-b-00000001', 1, outcome, new Date()), false, 'only the attempt’s own node records it');
  assert.equal(await store.recordLateOutcome(back, 'm-b-00000001', 1, outcome, new Date()), true);
  assert.equal(await store.recordLateOutcome(back, 'm-b-00000001', 1, outcome, new Date()), false, 'once');
  const late = (await store.listEvents('m-b-00000001')).filter((e) => e.kind === 'late-outcome');
  assert.equal(late.length, 1);
  assert.equal(late[0]?.from, 'held');
  assert.equal(late[0]?.to, 'held');
  assert.equal((await store.requireMigration('m-b-00000001')).state, 'held');
  assert.deepEqual(await store.listTakenOverAttempts('b'), []);
});

void test('queued migrations and running peaks are per node: a node schedules only its own tenants', async (t) => {
  const store = await open(t);
  if (!store) return;
  const a = (await register(store, 'a')).lease;
  const b = (await register(store, 'b')).lease;
  await runningOn(store, a, 'm-a-00000001', 'blog');
  await runningOn(store, b, 'm-b-00000001', 'shop');
  assert.deepEqual(await store.runningPeaks('a'), STEADY);
  assert.deepEqual(
    (await store.listRunning()).map((r) => [r.id, r.node]),
    [
      ['m-a-00000001', 'a'],
      ['m-b-00000001', 'b'],
    ],
  );
  assert.deepEqual(await store.listQueued('a'), []);
});
