/**
 * The store conformance suite (STYLE.md §4): the same tests against every backend. Each test opens
 * its own empty store, so nothing leaks between tests; `cleanup` closes it and removes its files
 * or schema.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test, type TestContext } from 'node:test';
import { admit } from '../../src/core/admission.ts';
import { FerryError, type ErrorCode } from '../../src/core/errors.ts';
import { TRANSITIONS, holdsTenant, type LifecycleEvent } from '../../src/core/lifecycle.ts';
import { MIGRATION_STATES, type MigrationRequest, type MigrationState, type Resources, type Verdict } from '../../src/core/types.ts';
import { rawDatabaseForTests } from '../../src/store/raw-database-for-tests.ts';
import type { MigrationRecord } from '../../src/store/records.ts';
import type { Store } from '../../src/store/store.ts';

export interface OpenedStore {
  readonly store: Store;
  cleanup(): Promise<void>;
}

export interface StoreSuiteOptions {
  /** Called first in every test; false means the test was skipped (e.g. no PostgreSQL here). */
  readonly ready?: (t: TestContext) => Promise<boolean>;
}

const STEADY: Resources = { cpu: 1000, memory: 1024 ** 3 };
const PEAK: Resources = { cpu: 1500, memory: 2 * 1024 ** 3 };
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

/** Distinct, increasing instants, so event and row order never depends on the wall clock. */
function clock(): () => Date {
  let n = 0;
  return () => new Date(T0 + 1000 * n++);
}

function verdict(tenant: string, steadyState: Resources = STEADY): Verdict {
  return admit({
    tenantId: tenant,
    peak: PEAK,
    tenant: { id: tenant, steadyState },
    capacity: {},
    now: new Date(T0),
  });
}

function request(tenant: string, issue: string): MigrationRequest {
  return {
    issue,
    tenant,
    peak: PEAK,
    steps: [
      { name: 'copy', run: ['sh', '-c', 'true'] },
      { name: 'index', run: ['sh', '-c', 'true'], timeoutMs: 60_000 },
    ],
    snapshot: 'auto',
    env: { SOURCE: 'old' },
  };
}

/** The lifecycle event that moves `from` to `to` (the store derives `to` from the event). */
function eventFor(from: MigrationState, to: MigrationState): LifecycleEvent {
  const row = TRANSITIONS.find((r) => r.from === from && r.to === to);
  // An illegal pair is tested with some event the table refuses from `from`.
  return row?.event ?? (to === 'rejected' ? 'reject' : 'approve');
}

/** Assert that `promise` rejects with a FerryError of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<FerryError> {
  let caught: unknown = null;
  await promise.then(
    () => undefined,
    (err: unknown) => {
      caught = err;
    },
  );
  assert.ok(caught !== null, `expected ${code}, but it succeeded`);
  assert.ok(caught instanceof FerryError, `expected a FerryError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

export function defineStoreSuite(name: string, open: () => Promise<OpenedStore>, options: StoreSuiteOptions = {}): void {
  void describe(`store conformance: ${name}`, () => {
    let opened: OpenedStore | null = null;

    afterEach(async () => {
      const o = opened;
      opened = null;
      await o?.cleanup();
    });

    /** A fresh store with helpers bound to it, or null when the backend is not available here. */
    async function setup(t: TestContext) {
      if (options.ready && !(await options.ready(t))) return null;
      opened = await open();
      const store = opened.store;
      const now = clock();

      async function tenant(id: string, steadyState: Resources = STEADY): Promise<void> {
        await store.putTenant(id, { steadyState: steadyState, data: `/srv/${id}`, runAs: null, allowRoot: false }, { first: 200000, last: 299999 }, now());
      }
      async function file(id: string, tenantId: string, issue = 'github:acme/platform#1'): Promise<MigrationRecord> {
        return store.insertMigration(
          { id, issue, tenant: tenantId, request: request(tenantId, issue), verdict: verdict(tenantId), filedBy: 'alice' },
          { actor: 'alice', kind: 'file', reason: 'filed by a test' },
          now(),
        );
      }
      async function move(id: string, from: MigrationState, to: MigrationState, patch = {}): Promise<MigrationRecord> {
        return store.transition({ id, from, patch, event: { actor: 'bob', kind: eventFor(from, to) }, now: now() });
      }
      async function queue(id: string): Promise<MigrationRecord> {
        await move(id, 'filed', 'approved');
        return move(id, 'approved', 'queued');
      }
      async function start(id: string, number: number, fromStep = 0): Promise<MigrationRecord> {
        const m = await store.requireMigration(id);
        const started = await store.startAttempt({
          id,
          number,
          fromStep,
          logRef: `/logs/${id}/attempt-${number}.log`,
          limitsEnforced: true,
          isolated: true,
          verdict: verdict(m.tenant),
          event: { actor: 'ferry', reason: `attempt ${number}` },
          now: now(),
        });
        return started.migration;
      }
      async function fail(id: string, number: number): Promise<MigrationRecord> {
        return store.finishAttempt({
          id,
          number,
          attempt: { exitCode: 3, signal: null, cause: 'exit-code', detail: 'step 1 (copy): exited with code 3' },
          patch: { failedStep: 0, heldCause: 'exit-code', heldDetail: 'step 1 (copy) exited with code 3', next: null },
          event: { actor: 'ferry', kind: 'fail', reason: 'step 1 failed' },
          now: now(),
        });
      }
      /** A migration of `tenantId` that holds it: running attempt 1. */
      async function running(id: string, tenantId: string): Promise<MigrationRecord> {
        await file(id, tenantId);
        await queue(id);
        return start(id, 1);
      }
      return { store, now, tenant, file, move, queue, start, fail, running };
    }

    // ── tenants ──

    void test('tenants registered at once without runAs each get a uid of their own', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const ids = Array.from({ length: 16 }, (_, i) => `race-${i}`);
      const results = await Promise.allSettled(
        ids.map((id) =>
          s.store.putTenant(id, { steadyState: STEADY, data: `/srv/${id}`, runAs: null, allowRoot: false }, { first: 200000, last: 299999 }, s.now()),
        ),
      );
      assert.deepEqual(
        results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
        [],
      );
      const uids = (await s.store.listTenants()).map((tenant) => tenant.runAs?.uid);
      assert.equal(new Set(uids).size, ids.length, `distinct uids: ${uids.join(', ')}`);
    });

    void test('putTenant creates, then updates; getTenant and listTenants read it back', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { store, now } = s;
      assert.equal(await store.getTenant('shop'), null);
      assert.deepEqual(await store.listTenants(), []);

      const first = await store.putTenant(
        'shop',
        { steadyState: { cpu: 500, memory: 1024 }, data: '/srv/shop', runAs: null, allowRoot: false },
        { first: 200000, last: 299999 },
        now(),
      );
      assert.equal(first.created, true);
      assert.deepEqual(first.tenant.steadyState, { cpu: 500, memory: 1024 });
      assert.equal(first.tenant.data, '/srv/shop');

      const second = await store.putTenant(
        'shop',
        { steadyState: { cpu: 700, memory: 2048, 'ephemeral-storage': 10 }, data: '/srv/shop2', runAs: null, allowRoot: false },
        { first: 200000, last: 299999 },
        now(),
      );
      assert.equal(second.created, false);
      assert.deepEqual(second.tenant.steadyState, { cpu: 700, memory: 2048, 'ephemeral-storage': 10 });
      assert.equal(second.tenant.createdAt, first.tenant.createdAt, 'an update keeps the creation time');
      assert.notEqual(second.tenant.updatedAt, first.tenant.updatedAt);

      await store.putTenant(
        'blog',
        { steadyState: { cpu: 100, memory: 1 }, data: '/srv/blog', runAs: null, allowRoot: false },
        { first: 200000, last: 299999 },
        now(),
      );
      const got = await store.getTenant('shop');
      assert.deepEqual(got, second.tenant);
      assert.deepEqual(
        (await store.listTenants()).map((x) => x.id),
        ['blog', 'shop'],
      );
    });

    void test('quantities beyond 32 bits survive the round trip exactly', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const big = { cpu: 64_000, memory: 3 * 1024 ** 4 + 1 };
      await s.store.putTenant('big', { steadyState: big, data: '/srv/big', runAs: null, allowRoot: false }, { first: 200000, last: 299999 }, s.now());
      assert.deepEqual((await s.store.getTenant('big'))?.steadyState, big);
    });

    void test('tenants get distinct identities from the range; a given runAs is kept; a shared uid is refused', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { store, now } = s;
      const range = { first: 300_000, last: 300_002 };
      const put = (id: string, runAs: { uid: number; gid: number } | null = null, data = `/srv/${id}`) =>
        store.putTenant(id, { steadyState: STEADY, data, runAs, allowRoot: false }, range, now());
      const a = await put('a');
      const b = await put('b');
      assert.deepEqual(a.tenant.runAs, { uid: 300_000, gid: 300_000 });
      assert.deepEqual(b.tenant.runAs, { uid: 300_001, gid: 300_001 });
      // An update without runAs keeps the identity it has.
      assert.deepEqual((await put('a')).tenant.runAs, a.tenant.runAs);
      const c = await put('c', { uid: 4242, gid: 4343 });
      assert.deepEqual(c.tenant.runAs, { uid: 4242, gid: 4343 });
      const shared = await rejectsWith(put('d', { uid: 300_001, gid: 1 }), 'FERRY_CONFLICT');
      assert.match(shared.message, /uid 300001 is already tenant b's identity/);
      assert.equal(await store.getTenant('d'), null, 'nothing written');
      await put('d');
      await rejectsWith(put('e'), 'FERRY_CONFLICT');
    });

    void test('data and runAs of a held tenant cannot change; its steady-state can', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { store, now, tenant, running } = s;
      await tenant('shop');
      const before = await store.getTenant('shop');
      await running('m-1', 'shop');
      const range = { first: 200000, last: 299999 };
      const busy = await rejectsWith(
        store.putTenant('shop', { steadyState: STEADY, data: '/srv/elsewhere', runAs: null, allowRoot: false }, range, now()),
        'FERRY_TENANT_BUSY',
      );
      assert.match(busy.message, /held by migration m-1/);
      await rejectsWith(
        store.putTenant('shop', { steadyState: STEADY, data: '/srv/shop', runAs: { uid: 5000, gid: 5000 }, allowRoot: false }, range, now()),
        'FERRY_TENANT_BUSY',
      );
      assert.deepEqual((await store.getTenant('shop'))?.data, before?.data);
      // Its placement (swarm node) neither: its scratch and snapshot are on that node.
      await rejectsWith(
        store.putTenant('shop', { steadyState: STEADY, data: '/srv/shop', runAs: null, allowRoot: false, placement: 'host-b' }, range, now()),
        'FERRY_TENANT_BUSY',
      );
      assert.equal((await store.getTenant('shop'))?.placement, null);
      const raised = await store.putTenant(
        'shop',
        { steadyState: { cpu: 4000, memory: 8 * 1024 ** 3 }, data: '/srv/shop', runAs: null, allowRoot: false },
        range,
        now(),
      );
      assert.deepEqual(raised.tenant.runAs, before?.runAs);
    });

    // ── migrations and events ──

    void test('insertMigration stores the request and verdict in filed, with one file event', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop', 'github:acme/platform#7');
      assert.equal(m.state, 'filed');
      assert.equal(m.attempts, 0);
      assert.equal(m.issue, 'github:acme/platform#7');
      assert.equal(m.filedBy, 'alice');
      assert.deepEqual(m.request, request('shop', 'github:acme/platform#7'));
      assert.deepEqual(m.peak, PEAK);
      assert.deepEqual(m.verdict, verdict('shop'));
      assert.deepEqual(await s.store.getMigration(m.id), m);

      const events = await s.store.listEvents(m.id);
      assert.equal(events.length, 1);
      assert.deepEqual(
        { actor: events[0]?.actor, kind: events[0]?.kind, from: events[0]?.from, to: events[0]?.to, reason: events[0]?.reason },
        { actor: 'alice', kind: 'file', from: null, to: 'filed', reason: 'filed by a test' },
      );
      assert.equal(await s.store.getMigration('m-nope-00000000'), null);
      await rejectsWith(s.store.requireMigration('m-nope-00000000'), 'FERRY_NOT_FOUND');
    });

    void test('inserting a second migration with an existing id fails and changes nothing', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      await assert.rejects(s.file('m-a-00000001', 'shop', 'github:acme/platform#2'));
      assert.deepEqual(await s.store.getMigration(m.id), m);
      assert.equal((await s.store.listEvents(m.id)).length, 1, 'the failed insert left no event');
    });

    void test('listMigrations filters by tenant, state and issue', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.tenant('blog');
      await s.file('m-a-00000001', 'shop', 'github:acme/platform#1');
      await s.file('m-a-00000002', 'blog', 'github:acme/platform#2');
      await s.file('m-a-00000003', 'shop', 'github:acme/platform#2');
      await s.queue('m-a-00000003');
      const ids = (list: MigrationRecord[]) => list.map((m) => m.id);
      assert.deepEqual(ids(await s.store.listMigrations()), ['m-a-00000001', 'm-a-00000002', 'm-a-00000003']);
      assert.deepEqual(ids(await s.store.listMigrations({ tenant: 'shop' })), ['m-a-00000001', 'm-a-00000003']);
      assert.deepEqual(ids(await s.store.listMigrations({ state: ['queued'] })), ['m-a-00000003']);
      assert.deepEqual(ids(await s.store.listMigrations({ state: ['filed', 'queued'], tenant: 'blog' })), ['m-a-00000002']);
      assert.deepEqual(ids(await s.store.listMigrations({ issue: 'github:acme/platform#2' })), ['m-a-00000002', 'm-a-00000003']);
      assert.deepEqual(ids(await s.store.listMigrations({ state: [] })), []);
    });

    void test('transition is a compare-and-set: moving again from the old state is FERRY_CONFLICT and changes nothing', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      const approved = await s.move(m.id, 'filed', 'approved');
      assert.equal(approved.state, 'approved');

      const err = await rejectsWith(s.move(m.id, 'filed', 'approved'), 'FERRY_CONFLICT');
      assert.match(err.message, /approved/);
      await rejectsWith(s.move(m.id, 'filed', 'rejected'), 'FERRY_CONFLICT');

      assert.deepEqual(await s.store.getMigration(m.id), approved, 'state and fields unchanged');
      const events = await s.store.listEvents(m.id);
      assert.deepEqual(
        events.map((e) => [e.from, e.to]),
        [
          [null, 'filed'],
          ['filed', 'approved'],
        ],
        'no event for the lost compare-and-set',
      );
    });

    void test('transition accepts a set of from-states and reports the state it actually left', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      await s.move(m.id, 'filed', 'approved');
      const cancelled = await s.store.transition({ id: m.id, from: ['filed', 'approved', 'queued'], event: { actor: 'bob', kind: 'cancel' }, now: s.now() });
      assert.equal(cancelled.state, 'cancelled');
      const last = (await s.store.listEvents(m.id)).at(-1);
      assert.equal(last?.from, 'approved');
      assert.equal(last?.to, 'cancelled');
    });

    void test('several moves in one transition append their events in order; a lost one changes nothing', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      const moves = [
        { event: { actor: 'bob', kind: 'approve' as const, reason: 'looks right' } },
        { patch: { heldDetail: 'gate passed' }, event: { actor: 'ferry', kind: 'gate-pass' as const, detail: { n: 1 } } },
      ];
      const queued = await s.store.transitions({ id: m.id, from: 'filed', moves, now: s.now() });
      assert.equal(queued.state, 'queued');
      assert.equal(queued.heldDetail, 'gate passed', "a later move's patch lands");
      const events = await s.store.listEvents(m.id);
      assert.deepEqual(
        events.map((e) => [e.from, e.to, e.actor, e.reason, e.detail]),
        [
          [null, 'filed', 'alice', 'filed by a test', null],
          ['filed', 'approved', 'bob', 'looks right', null],
          ['approved', 'queued', 'ferry', null, { n: 1 }],
        ],
      );
      await rejectsWith(s.store.transitions({ id: m.id, from: 'filed', moves, now: s.now() }), 'FERRY_CONFLICT');
      assert.deepEqual(await s.store.getMigration(m.id), queued);
      assert.equal((await s.store.listEvents(m.id)).length, 3, 'no event for the lost moves');
    });

    void test('a migration filed on a closed issue is FERRY_ISSUE_CLOSED and nothing is written', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.store.markIssueClosed('github:acme/platform#9', 'carol', s.now());
      await rejectsWith(s.file('m-a-00000009', 'shop', 'github:acme/platform#9'), 'FERRY_ISSUE_CLOSED');
      assert.equal(await s.store.getMigration('m-a-00000009'), null);
      assert.deepEqual(await s.store.listEvents('m-a-00000009'), []);
      // An issue the store has not seen yet is open.
      assert.equal((await s.file('m-a-00000010', 'shop', 'github:acme/platform#10')).state, 'filed');
    });

    void test('transition of an unknown migration is FERRY_NOT_FOUND', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await rejectsWith(s.move('m-nope-00000000', 'filed', 'approved'), 'FERRY_NOT_FOUND');
    });

    void test('a transition whose in-transaction work fails is rolled back whole', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      await assert.rejects(
        s.store.transition({ id: m.id, from: 'filed', event: { actor: 'bob', kind: 'approve' }, now: s.now() }, async () => {
          throw new Error('boom inside the transaction');
        }),
        /boom inside the transaction/,
      );
      assert.deepEqual(await s.store.getMigration(m.id), m);
      assert.equal((await s.store.listEvents(m.id)).length, 1);
    });

    // ── one holder per tenant (partial unique index) ──

    void test('a second migration of a tenant cannot start while the first runs (FERRY_TENANT_BUSY); the first stays', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const first = await s.running('m-a-00000001', 'shop');
      assert.equal(first.state, 'running');
      assert.equal(first.attempts, 1);
      await s.file('m-a-00000002', 'shop');
      const queued = await s.queue('m-a-00000002');
      const eventsBefore = await s.store.listEvents(queued.id);

      await rejectsWith(s.start(queued.id, 1), 'FERRY_TENANT_BUSY');

      assert.deepEqual(await s.store.getMigration(queued.id), queued, 'the second stays queued with 0 attempts');
      assert.deepEqual(await s.store.listAttempts(queued.id), [], 'no attempt row for the refused start');
      assert.deepEqual(await s.store.listEvents(queued.id), eventsBefore, 'no event for the refused start');
      assert.equal((await s.store.getMigration(first.id))?.state, 'running');
      assert.deepEqual(await s.store.listHolders(), [{ id: first.id, tenant: 'shop', state: 'running' }]);
    });

    void test('a plain transition into a holding state is refused too when the tenant is held', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      await s.file('m-a-00000002', 'shop');
      const queued = await s.queue('m-a-00000002');
      await rejectsWith(s.move(queued.id, 'queued', 'running', { attempts: 1 }), 'FERRY_TENANT_BUSY');
      await rejectsWith(s.move(queued.id, 'queued', 'held', { attempts: 1 }), 'FERRY_TENANT_BUSY');
      assert.deepEqual(await s.store.getMigration(queued.id), queued);
      assert.equal((await s.store.getMigration('m-a-00000001'))?.state, 'running');
    });

    void test('a held migration keeps holding its tenant', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      const held = await s.fail('m-a-00000001', 1);
      assert.equal(held.state, 'held');
      await s.file('m-a-00000002', 'shop');
      await s.queue('m-a-00000002');
      await rejectsWith(s.start('m-a-00000002', 1), 'FERRY_TENANT_BUSY');
      assert.equal((await s.store.getMigration('m-a-00000002'))?.state, 'queued');
      assert.equal((await s.store.getMigration('m-a-00000001'))?.state, 'held');
    });

    void test('a migration queued again after an attempt keeps holding; queued ones that never ran do not hold', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      await s.fail('m-a-00000001', 1);
      const requeued = await s.move('m-a-00000001', 'held', 'queued', { next: { fromStep: 0, checkpoint: null, restore: null } });
      assert.equal(requeued.attempts, 1);
      // Two never-started queued migrations of the same tenant are fine: they do not hold it.
      await s.file('m-a-00000002', 'shop');
      await s.queue('m-a-00000002');
      await s.file('m-a-00000003', 'shop');
      await s.queue('m-a-00000003');
      await rejectsWith(s.start('m-a-00000002', 1), 'FERRY_TENANT_BUSY');
      assert.deepEqual(
        (await s.store.listHolders()).map((h) => [h.id, h.state]),
        [['m-a-00000001', 'queued']],
      );
      // The holder itself may start its next attempt.
      const second = await s.start('m-a-00000001', 2);
      assert.equal(second.state, 'running');
      assert.equal(second.attempts, 2);
      assert.deepEqual(
        (await s.store.listAttempts('m-a-00000001')).map((a) => a.number),
        [1, 2],
      );
    });

    void test('migrations of two different tenants can both run', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.tenant('blog');
      const a = await s.running('m-a-00000001', 'shop');
      const b = await s.running('m-a-00000002', 'blog');
      assert.equal(a.state, 'running');
      assert.equal(b.state, 'running');
      assert.deepEqual((await s.store.listHolders()).map((h) => h.tenant).sort(), ['blog', 'shop']);
    });

    for (const terminal of ['succeeded', 'accepted-partial', 'abandoned', 'cancelled'] as const) {
      void test(`a holder that reaches ${terminal} releases its tenant`, async (t) => {
        const s = await setup(t);
        if (!s) return;
        await s.tenant('shop');
        await s.running('m-a-00000001', 'shop');
        if (terminal === 'succeeded') {
          await s.store.finishAttempt({
            id: 'm-a-00000001',
            number: 1,
            attempt: { exitCode: 0, cause: null },
            event: { actor: 'ferry', kind: 'succeed' },
            now: s.now(),
          });
        } else {
          await s.fail('m-a-00000001', 1);
          await s.move('m-a-00000001', 'held', terminal);
        }
        assert.deepEqual(await s.store.listHolders(), []);
        await s.file('m-a-00000002', 'shop');
        await s.queue('m-a-00000002');
        const next = await s.start('m-a-00000002', 1);
        assert.equal(next.state, 'running');
        assert.equal((await s.store.getMigration('m-a-00000001'))?.state, terminal);
      });
    }

    // ── attempts ──

    void test('startAttempt moves queued to running and inserts attempt n in the same transaction', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.file('m-a-00000001', 'shop');
      await s.queue('m-a-00000001');
      const m = await s.start('m-a-00000001', 1);
      assert.equal(m.state, 'running');
      assert.equal(m.attempts, 1);
      assert.equal(m.limitsEnforced, true);
      const attempts = await s.store.listAttempts(m.id);
      assert.equal(attempts.length, 1);
      assert.deepEqual(
        { n: attempts[0]?.number, from: attempts[0]?.fromStep, step: attempts[0]?.step, log: attempts[0]?.logRef, ended: attempts[0]?.endedAt },
        { n: 1, from: 0, step: null, log: `/logs/${m.id}/attempt-1.log`, ended: null },
      );
      assert.deepEqual(await s.store.getAttempt(m.id, 1), attempts[0]);
      assert.equal(await s.store.getAttempt(m.id, 2), null);
      assert.equal((await s.store.listEvents(m.id)).at(-1)?.to, 'running');
    });

    void test('startAttempt from a state other than queued is FERRY_CONFLICT and inserts no attempt', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      await rejectsWith(s.start(m.id, 1), 'FERRY_CONFLICT');
      assert.deepEqual(await s.store.listAttempts(m.id), []);
      assert.deepEqual(await s.store.getMigration(m.id), m);
    });

    void test('a startAttempt whose attempt row cannot be inserted leaves the migration queued and no new row', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      await s.fail('m-a-00000001', 1);
      const queued = await s.move('m-a-00000001', 'held', 'queued');
      const attemptsBefore = await s.store.listAttempts(queued.id);
      const eventsBefore = await s.store.listEvents(queued.id);
      // Attempt 1 exists already: the attempt insert violates its primary key after the state update.
      await assert.rejects(s.start(queued.id, 1));
      assert.deepEqual(await s.store.getMigration(queued.id), queued, 'state and attempts counter rolled back');
      assert.deepEqual(await s.store.listAttempts(queued.id), attemptsBefore);
      assert.deepEqual(await s.store.listEvents(queued.id), eventsBefore);
    });

    void test('finishAttempt ends the attempt and moves the migration out of running, together', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      await s.store.beginStep({ migrationId: 'm-a-00000001', issue: 'github:acme/platform#1', number: 1, step: 0, ref: 'job-1', now: s.now() });
      const held = await s.fail('m-a-00000001', 1);
      assert.equal(held.state, 'held');
      assert.equal(held.heldCause, 'exit-code');
      assert.equal(held.failedStep, 0);
      const attempt = await s.store.getAttempt('m-a-00000001', 1);
      assert.ok(attempt?.endedAt, 'attempt ended');
      assert.equal(attempt?.exitCode, 3);
      assert.equal(attempt?.cause, 'exit-code');
      assert.equal(attempt?.jobRef, 'job-1');
      assert.equal(attempt?.step, 0);

      // Finishing again (not running any more) is a conflict and changes nothing.
      await rejectsWith(s.fail('m-a-00000001', 1), 'FERRY_CONFLICT');
      assert.deepEqual(await s.store.getAttempt('m-a-00000001', 1), attempt);
      assert.deepEqual(await s.store.getMigration('m-a-00000001'), held);
    });

    void test('updateMigration changes checkpoint and progress without an event', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      const before = await s.store.listEvents('m-a-00000001');
      await s.store.updateMigration('m-a-00000001', { checkpoint: { step: 1, text: 'row 42' }, progress: { done: 3, total: 1e12 } }, s.now());
      const m = await s.store.requireMigration('m-a-00000001');
      assert.deepEqual(m.checkpoint, { step: 1, text: 'row 42' });
      assert.deepEqual(m.progress, { done: 3, total: 1e12 });
      assert.equal(m.state, 'running');
      assert.deepEqual(await s.store.listEvents('m-a-00000001'), before);

      // Held: a job's late output no longer rewrites what the operator decides on.
      const held = await s.fail('m-a-00000001', 1);
      await s.store.updateMigration('m-a-00000001', { checkpoint: { step: 1, text: 'row 99' }, progress: { done: 4, total: 5 } }, s.now());
      assert.deepEqual(await s.store.requireMigration('m-a-00000001'), held);
    });

    // ── artifacts ──

    void test('artifacts are recorded once per (kind, ref) as intents; markArtifact records creation and removal', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.tenant('blog');
      await s.file('m-a-00000001', 'shop', 'github:acme/platform#1');
      await s.queue('m-a-00000001');
      const started = await s.store.startAttempt({
        id: 'm-a-00000001',
        number: 1,
        fromStep: 0,
        logRef: '/scratch/1',
        limitsEnforced: true,
        isolated: true,
        verdict: verdict('shop'),
        event: { actor: 'ferry', reason: 'attempt 1' },
        now: s.now(),
        // Same (kind, ref) twice, then the same ref as another kind: a different artifact.
        artifacts: [
          { kind: 'scratch', ref: '/scratch/1' },
          { kind: 'scratch', ref: '/scratch/1' },
          { kind: 'log', ref: '/scratch/1' },
        ],
      });
      assert.deepEqual(started.attempt, await s.store.getAttempt('m-a-00000001', 1), 'the start answers the attempt as stored');
      const [a, again, log] = started.artifacts;
      assert.ok(a && again && log);
      assert.equal(a.state, 'intended');
      assert.equal(a.createdAt, null);
      assert.deepEqual(again, a, 'the second record returns the first row');
      assert.notEqual(log.id, a.id);
      await s.file('m-a-00000002', 'blog', 'github:acme/platform#2');
      await s.queue('m-a-00000002');
      await s.start('m-a-00000002', 1);
      const beginJob2 = () =>
        s.store.beginStep({ migrationId: 'm-a-00000002', issue: 'github:acme/platform#2', number: 1, step: 1, ref: 'job-2', now: s.now() });
      const other = await beginJob2();
      assert.equal((await s.store.listArtifacts({})).length, 3);

      await s.store.markArtifact(a.id, 'created', s.now());
      const created = (await s.store.listArtifacts({ migrationId: 'm-a-00000001' })).find((x) => x.id === a.id);
      assert.equal(created?.state, 'created');
      assert.ok(created?.createdAt);
      // Recording again after creation still does not reset it to intended.
      await s.store.markArtifact(other.id, 'created', s.now());
      assert.equal((await beginJob2()).state, 'created');

      await s.store.markArtifact(a.id, 'removed', s.now());
      const removed = (await s.store.listArtifacts({ migrationId: 'm-a-00000001' })).find((x) => x.id === a.id);
      assert.equal(removed?.state, 'removed');
      assert.ok(removed?.removedAt);

      assert.deepEqual(
        (await s.store.listArtifacts({ issue: 'github:acme/platform#1', present: true })).map((x) => x.id),
        [log.id],
        'present excludes removed artifacts',
      );
      assert.deepEqual(
        (await s.store.listArtifacts({ issue: 'github:acme/platform#1' })).map((x) => x.id).sort((x, y) => x - y),
        [a.id, log.id].sort((x, y) => x - y),
      );
      assert.deepEqual(
        (await s.store.listArtifacts({ migrationId: 'm-a-00000002', present: true })).map((x) => x.id),
        [other.id],
      );
    });

    // ── issues ──

    void test('markIssueClosed is idempotent; issuesPendingTeardown lists closed issues until teardown is done', async (t) => {
      const s = await setup(t);
      if (!s) return;
      assert.equal(await s.store.getIssue('github:acme/platform#9'), null);
      assert.deepEqual(await s.store.issuesPendingTeardown(), []);

      assert.equal(await s.store.markIssueClosed('github:acme/platform#9', 'carol', s.now()), true);
      const closed = await s.store.getIssue('github:acme/platform#9');
      assert.equal(closed?.closedBy, 'carol');
      assert.ok(closed?.closedAt);
      assert.equal(closed?.teardownDoneAt, null);

      assert.equal(await s.store.markIssueClosed('github:acme/platform#9', 'dave', s.now()), false, 'closing twice reports it was closed');
      assert.deepEqual(await s.store.getIssue('github:acme/platform#9'), closed, 'the second close changes nothing');

      await s.store.markIssueClosed('github:acme/platform#10', 'carol', s.now());
      assert.deepEqual((await s.store.issuesPendingTeardown()).sort(), ['github:acme/platform#10', 'github:acme/platform#9']);
      await s.store.markTeardownDoneIfClear('github:acme/platform#9', s.now());
      assert.deepEqual(await s.store.issuesPendingTeardown(), ['github:acme/platform#10']);
      assert.ok((await s.store.getIssue('github:acme/platform#9'))?.teardownDoneAt);
    });

    // ── events ──

    void test('the transition table decides: an event the table does not allow from the state is refused, naming both', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      const before = await s.store.listEvents(m.id);
      const err = await rejectsWith(
        s.store.transition({ id: m.id, from: 'filed', event: { actor: 'bob', kind: 'resume' }, now: s.now() }),
        'FERRY_WRONG_STATE',
      );
      assert.match(err.message, /the migration is filed; resume is allowed only from held/);
      assert.equal((await s.store.requireMigration(m.id)).state, 'filed');
      assert.deepEqual(await s.store.listEvents(m.id), before, 'no event written');
    });

    void test('the database refuses a state it does not know, whatever the code does', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      for (const set of [{ state: 'paused' }, { held_cause: 'tired' }, { next_restore: 'magic' }]) {
        await assert.rejects(
          rawDatabaseForTests(s.store).updateTable('migrations').set(set).where('id', '=', m.id).execute(),
          /must be one of|violates check constraint/,
        );
      }
      assert.equal((await s.store.requireMigration(m.id)).state, 'filed');
      // A known value passes the same check.
      await rawDatabaseForTests(s.store).updateTable('migrations').set({ held_cause: 'gate' }).where('id', '=', m.id).execute();
    });

    void test('the unique index one_holder_per_tenant holds exactly where core holdsTenant() says', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const holder = await s.running('m-h-00000001', 'shop');
      assert.equal(holdsTenant(holder.state, holder.attempts), true);
      let n = 2;
      for (const state of MIGRATION_STATES) {
        for (const attempts of [0, 1]) {
          const id = `m-x-${String(n++).padStart(8, '0')}`;
          await s.file(id, 'shop');
          const second = rawDatabaseForTests(s.store).updateTable('migrations').set({ state, attempts }).where('id', '=', id).execute();
          if (holdsTenant(state, attempts))
            await assert.rejects(second, /unique/i, `${state} with ${attempts} attempts holds the tenant: the index must refuse a second holder`);
          else await second;
        }
      }
    });

    void test('events are append-only and ordered: later changes never rewrite earlier events', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.file('m-a-00000001', 'shop');
      await s.file('m-a-00000002', 'shop');
      await s.queue('m-a-00000001');
      const snapshot = await s.store.listEvents('m-a-00000001');
      await s.move('m-a-00000002', 'filed', 'rejected');
      await s.start('m-a-00000001', 1);
      await s.store.appendEvent('m-a-00000001', 'running', { actor: 'ferry', kind: 'note', reason: 'still running', detail: { n: 1 } }, s.now());
      await s.fail('m-a-00000001', 1);

      const events = await s.store.listEvents('m-a-00000001');
      assert.deepEqual(events.slice(0, snapshot.length), snapshot, 'earlier events unchanged');
      assert.deepEqual(
        events.map((e) => [e.kind, e.from, e.to]),
        [
          ['file', null, 'filed'],
          ['approve', 'filed', 'approved'],
          ['gate-pass', 'approved', 'queued'],
          ['start', 'queued', 'running'],
          ['note', 'running', 'running'],
          ['fail', 'running', 'held'],
        ],
      );
      assert.deepEqual(events[4]?.detail, { n: 1 });
      const ids = events.map((e) => e.id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );
      assert.equal(new Set(ids).size, ids.length);
      assert.ok(
        events.every((e) => e.migrationId === 'm-a-00000001'),
        'events of the other migration are not mixed in',
      );
    });

    // ── transition listeners ──

    void test('onTransition listeners are called after the commit, only for committed transitions', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      const m = await s.file('m-a-00000001', 'shop');
      const calls: Array<{ id: string; state: MigrationState; from: MigrationState; kind: string }> = [];
      const seen: Array<Promise<MigrationRecord | null>> = [];
      const order: string[] = [];
      const stop = s.store.onTransition((rec, from, event) => {
        order.push('listener');
        calls.push({ id: rec.id, state: rec.state, from, kind: event.kind });
        // Read through the store: what a listener sees must already be committed.
        seen.push(s.store.getMigration(rec.id));
      });
      const throwing = s.store.onTransition(() => {
        throw new Error('a listener failing');
      });

      await s.store.transition({ id: m.id, from: 'filed', event: { actor: 'bob', kind: 'approve' }, now: s.now() }, async () => {
        order.push('in-transaction');
      });
      assert.deepEqual(order, ['in-transaction', 'listener']);
      assert.deepEqual(calls, [{ id: m.id, state: 'approved', from: 'filed', kind: 'approve' }]);
      assert.equal((await seen[0])?.state, 'approved');
      assert.equal((await s.store.getMigration(m.id))?.state, 'approved', 'a throwing listener does not undo the transition');

      // Lost compare-and-set, failing in-transaction work: no call.
      await rejectsWith(s.move(m.id, 'filed', 'approved'), 'FERRY_CONFLICT');
      await assert.rejects(
        s.store.transition({ id: m.id, from: 'approved', event: { actor: 'bob', kind: 'gate-pass' }, now: s.now() }, async () => {
          throw new Error('rolled back');
        }),
      );
      assert.equal(calls.length, 1);

      stop();
      throwing();
      await s.move(m.id, 'approved', 'queued');
      assert.equal(calls.length, 1, 'no call after unsubscribing');
    });

    void test('the tenant-busy refusal does not call listeners', async (t) => {
      const s = await setup(t);
      if (!s) return;
      await s.tenant('shop');
      await s.running('m-a-00000001', 'shop');
      await s.file('m-a-00000002', 'shop');
      await s.queue('m-a-00000002');
      let calls = 0;
      s.store.onTransition(() => {
        calls++;
      });
      await rejectsWith(s.start('m-a-00000002', 1), 'FERRY_TENANT_BUSY');
      assert.equal(calls, 0);
    });
  });
}
