/**
 * Model-based property test of the whole pure core (TR-40, TR-41, TR-42): a small in-memory world
 * built only from transition, holdsTenant, decideStarts, admit and planRecovery, driven by random
 * sequences of file / approve / tick (gate + start) / succeed / fail / act / close / drift.
 * After every command we check the invariants the design promises, with oracles that do not reuse
 * the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { admit } from '../../src/core/admission.ts';
import { FerryError } from '../../src/core/errors.ts';
import { holdsTenant, transition, type LifecycleEvent } from '../../src/core/lifecycle.ts';
import { planRecovery } from '../../src/core/recovery.ts';
import { decideStarts } from '../../src/core/scheduling.ts';
import type { MigrationState, RecoveryAction, Resources, Tenant } from '../../src/core/types.ts';

const NOW = new Date('2025-01-01T00:00:00.000Z');
const TENANT_IDS = ['alpha', 'beta', 'gamma'] as const;
/** Filed against, never registered: admission must fail closed. */
const GHOST = 'ghost';
const LEAVES_HELD: ReadonlySet<LifecycleEvent> = new Set(['wipe-and-retry', 'resume', 'accept-partial', 'abandon', 'cancel']);
const ADMITTING: ReadonlySet<LifecycleEvent> = new Set(['gate-pass', 'start', 'wipe-and-retry', 'resume']);
const TERMINAL: ReadonlySet<MigrationState> = new Set(['rejected', 'succeeded', 'accepted-partial', 'abandoned', 'cancelled']);

interface Migration {
  readonly id: string;
  readonly tenant: string;
  readonly issue: number;
  readonly peak: Resources;
  readonly seq: number;
  readonly hasWipeStep: boolean;
  readonly wantsSnapshot: boolean;
  state: MigrationState;
  attempts: number;
  failedStep: number;
  checkpoint: string | null;
  snapshotAt: string | null;
}

interface LogEntry {
  readonly id: string;
  readonly from: MigrationState;
  readonly event: LifecycleEvent;
  readonly to: MigrationState;
  /** The tenant's steady-state at the moment of the move, for the admission oracle. */
  readonly steady: Resources | null;
}

interface World {
  readonly tenants: Map<string, Tenant>;
  readonly capacity: Resources;
  readonly migrations: Migration[];
  log: LogEntry[];
}

type Command =
  | {
      kind: 'file';
      tenant: number;
      issue: number;
      /** Peak as thousandths of the tenant's current steady-state; 2000 is exactly the cap. */
      cpuPermille: number;
      memoryPermille: number;
      /** Add one unit to the cpu peak, to probe the boundary. */
      plusOne: boolean;
      gpu: boolean;
      hasWipeStep: boolean;
      wantsSnapshot: boolean;
    }
  | { kind: 'approve'; pick: number; targeted: boolean }
  | { kind: 'tick' }
  | { kind: 'succeed'; pick: number; targeted: boolean }
  | { kind: 'fail'; pick: number; targeted: boolean; step: number; checkpoint: string | null }
  | { kind: 'act'; pick: number; targeted: boolean; action: RecoveryAction }
  | { kind: 'close'; issue: number }
  | { kind: 'drift'; tenant: number; cpu: number; memory: number };

const steadyArb = fc.integer({ min: 1, max: 2000 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('file' as const),
      tenant: fc.integer({ min: 0, max: TENANT_IDS.length }),
      issue: fc.integer({ min: 0, max: 2 }),
      cpuPermille: fc.oneof(fc.integer({ min: 0, max: 2200 }), fc.constant(2000)),
      memoryPermille: fc.oneof(fc.integer({ min: 0, max: 2200 }), fc.constant(2000)),
      plusOne: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
      gpu: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      hasWipeStep: fc.boolean(),
      wantsSnapshot: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('approve' as const), pick: fc.nat(), targeted: fc.boolean() }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('succeed' as const), pick: fc.nat(), targeted: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('fail' as const),
      pick: fc.nat(),
      targeted: fc.boolean(),
      step: fc.integer({ min: 0, max: 2 }),
      checkpoint: fc.option(fc.string({ maxLength: 8 }), { nil: null }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('act' as const),
      pick: fc.nat(),
      targeted: fc.boolean(),
      action: fc.constantFrom<RecoveryAction>('wipe-and-retry', 'resume', 'accept-partial', 'abandon'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), issue: fc.integer({ min: 0, max: 2 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('drift' as const),
      tenant: fc.integer({ min: 0, max: TENANT_IDS.length - 1 }),
      cpu: steadyArb,
      memory: steadyArb,
    }),
  },
);

const worldArb = fc.record({
  steady: fc.array(fc.record({ cpu: steadyArb, memory: steadyArb }), { minLength: TENANT_IDS.length, maxLength: TENANT_IDS.length }),
  capacity: fc.record({ cpu: fc.integer({ min: 2000, max: 10_000 }), memory: fc.integer({ min: 2000, max: 10_000 }) }),
  commands: fc.array(commandArb, { minLength: 10, maxLength: 80, size: 'max' }),
});

/** Observed across all runs, so the test proves it exercised the interesting paths. */
const seen = { started: 0, filedOk: 0, concurrentTenants: 0, resumed: 0, wiped: 0, noWipe: 0, refusedAtStart: 0, heldWhileOthersQueued: 0, wrongState: 0 };

function isWrongState(err: unknown): boolean {
  return err instanceof FerryError && err.code === 'FERRY_WRONG_STATE';
}

function apply(world: World, m: Migration, event: LifecycleEvent): void {
  const from = m.state;
  m.state = transition(from, event);
  const steady = world.tenants.get(m.tenant)?.steadyState ?? null;
  world.log.push({ id: m.id, from, event, to: m.state, steady: steady ? { ...steady } : null });
}

/** Apply `event` if the core allows it; an illegal move must throw FERRY_WRONG_STATE and change nothing. */
function tryApply(world: World, m: Migration, event: LifecycleEvent): boolean {
  const before = m.state;
  try {
    apply(world, m, event);
    return true;
  } catch (err) {
    if (!isWrongState(err)) throw err;
    assert.equal(m.state, before, 'an illegal move changed the state');
    seen.wrongState++;
    return false;
  }
}

function gate(world: World, m: Migration): boolean {
  return admit({ tenantId: m.tenant, peak: m.peak, tenant: world.tenants.get(m.tenant) ?? null, capacity: world.capacity, now: NOW }).ok;
}

/**
 * A random migration; when `targeted`, one in the state the command is meant for (so that the
 * interesting moves happen often), otherwise any migration (so that illegal moves are tried too).
 */
function pick(world: World, n: number, targeted: boolean, state: MigrationState): Migration | undefined {
  const pool = targeted ? world.migrations.filter((m) => m.state === state) : world.migrations;
  return pool.length === 0 ? undefined : pool[n % pool.length];
}

function run(world: World, c: Command): void {
  switch (c.kind) {
    case 'file': {
      const tenant = c.tenant < TENANT_IDS.length ? (TENANT_IDS[c.tenant] as string) : GHOST;
      const steady = world.tenants.get(tenant)?.steadyState ?? { cpu: 1000, memory: 1000 };
      const scaled = (d: string, permille: number): number => Math.floor(((steady[d] ?? 1000) * permille) / 1000);
      const peak: Record<string, number> = {
        cpu: scaled('cpu', c.cpuPermille) + (c.plusOne ? 1 : 0),
        memory: scaled('memory', c.memoryPermille),
      };
      if (c.gpu) peak.gpu = 1;
      const m: Migration = {
        id: `m${world.migrations.length}`,
        tenant,
        issue: c.issue,
        peak,
        seq: world.migrations.length,
        hasWipeStep: c.hasWipeStep,
        wantsSnapshot: c.wantsSnapshot,
        state: 'filed',
        attempts: 0,
        failedStep: 0,
        checkpoint: null,
        snapshotAt: null,
      };
      world.migrations.push(m);
      if (!gate(world, m)) apply(world, m, 'reject');
      else seen.filedOk++;
      return;
    }
    case 'approve': {
      const m = pick(world, c.pick, c.targeted, 'filed');
      if (m) tryApply(world, m, 'approve');
      return;
    }
    case 'tick': {
      for (const m of world.migrations) if (m.state === 'approved') apply(world, m, gate(world, m) ? 'gate-pass' : 'reject');
      const holders = new Map<string, string>();
      for (const m of world.migrations) if (holdsTenant(m.state, m.attempts)) holders.set(m.tenant, m.id);
      const inUse: Record<string, number> = {};
      for (const m of world.migrations) {
        if (m.state !== 'running') continue;
        for (const [d, v] of Object.entries(m.peak)) inUse[d] = (inUse[d] ?? 0) + v;
      }
      const queued = world.migrations.filter((m) => m.state === 'queued').map(({ id, tenant, peak, seq }) => ({ id, tenant, peak, seq }));
      if (queued.some((q) => holders.has(q.tenant) && holders.get(q.tenant) !== q.id)) seen.heldWhileOthersQueued++;
      const starts = decideStarts({ queued, holders, inUse, capacity: world.capacity });
      for (const id of starts) {
        const m = world.migrations.find((x) => x.id === id);
        assert.ok(m, `decideStarts returned ${id}, which is not queued`);
        // The gate runs again before every attempt (defense in depth).
        if (!gate(world, m)) {
          seen.refusedAtStart++;
          apply(world, m, m.attempts > 0 ? 'refuse' : 'reject');
          continue;
        }
        apply(world, m, 'start');
        seen.started++;
        m.attempts++;
        if (m.attempts === 1 && m.wantsSnapshot) m.snapshotAt = NOW.toISOString();
      }
      const runningTenants = new Set(world.migrations.filter((m) => m.state === 'running').map((m) => m.tenant));
      if (runningTenants.size > 1) seen.concurrentTenants++;
      return;
    }
    case 'succeed': {
      const m = pick(world, c.pick, c.targeted, 'running');
      if (m) tryApply(world, m, 'succeed');
      return;
    }
    case 'fail': {
      const m = pick(world, c.pick, c.targeted, 'running');
      if (m && tryApply(world, m, 'fail')) {
        m.failedStep = c.step;
        if (c.checkpoint !== null) m.checkpoint = c.checkpoint;
      }
      return;
    }
    case 'act': {
      const m = pick(world, c.pick, c.targeted, 'held');
      if (!m) return;
      let next: MigrationState;
      try {
        next = transition(m.state, c.action);
      } catch (err) {
        if (!isWrongState(err)) throw err;
        assert.notEqual(m.state, 'held', `${c.action} refused on a held migration`);
        seen.wrongState++;
        return;
      }
      let plan;
      try {
        plan = planRecovery(c.action, { ...m, hasWipeStep: m.hasWipeStep, stepNames: ['a', 'b', 'c'] });
      } catch (err) {
        assert.ok(err instanceof FerryError && err.code === 'FERRY_NO_WIPE', String(err));
        assert.equal(c.action, 'wipe-and-retry');
        assert.ok(m.snapshotAt === null && !m.hasWipeStep, 'FERRY_NO_WIPE although there is a way to wipe');
        seen.noWipe++;
        return;
      }
      assert.equal(plan.action, c.action);
      // Re-admission after an action: if the gate refuses now, the action is refused and the migration stays held.
      if (next === 'queued' && !gate(world, m)) return;
      apply(world, m, c.action);
      if (plan.action === 'resume') {
        assert.equal(plan.fromStep, m.failedStep);
        assert.equal(plan.checkpoint, m.checkpoint);
        seen.resumed++;
      }
      if (plan.action === 'wipe-and-retry') {
        assert.equal(plan.fromStep, 0);
        assert.equal(plan.restore, m.snapshotAt !== null ? 'snapshot' : 'wipe-step');
        m.checkpoint = null;
        seen.wiped++;
      }
      return;
    }
    case 'close': {
      for (const m of world.migrations) if (m.issue === c.issue && !TERMINAL.has(m.state)) apply(world, m, 'cancel');
      return;
    }
    case 'drift': {
      const id = TENANT_IDS[c.tenant] as string;
      world.tenants.set(id, { id, steadyState: { cpu: c.cpu, memory: c.memory }, data: `/srv/${id}`, runAs: { uid: 200000, gid: 200000 }, allowRoot: false });
      return;
    }
  }
}

function checkInvariants(world: World, before: ReadonlyMap<string, MigrationState>, c: Command): void {
  const where = `after ${JSON.stringify(c)}`;

  // TR-41: never two migrations holding one tenant, judged by holdsTenant and by the design's own
  // words (running, held, or queued again after an attempt), so a wrong predicate cannot hide itself.
  const designHolds = (m: Migration): boolean => m.state === 'running' || m.state === 'held' || (m.state === 'queued' && m.attempts > 0);
  for (const [name, holds] of [
    ['holdsTenant', (m: Migration) => holdsTenant(m.state, m.attempts)],
    ['design', designHolds],
  ] as const) {
    const holderOf = new Map<string, string>();
    for (const m of world.migrations) {
      if (!holds(m)) continue;
      const other = holderOf.get(m.tenant);
      assert.equal(other, undefined, `${where}: tenant ${m.tenant} held by ${other} and ${m.id} (${name})`);
      holderOf.set(m.tenant, m.id);
    }
  }

  // TR-42: a held migration leaves held only through a recovery action or a cancel; terminal is final.
  for (const entry of world.log) {
    if (entry.from === 'held' && entry.to !== 'held') assert.ok(LEAVES_HELD.has(entry.event), `${where}: ${entry.id} left held by ${entry.event}`);
  }
  for (const m of world.migrations) {
    const was = before.get(m.id);
    if (was === undefined) continue;
    if (TERMINAL.has(was)) assert.equal(m.state, was, `${where}: ${m.id} left terminal state ${was}`);
    if (was === 'held' && m.state !== 'held') {
      assert.ok(
        world.log.some((e) => e.id === m.id && e.from === 'held' && LEAVES_HELD.has(e.event)),
        `${where}: ${m.id} left held without an action or cancel`,
      );
    }
  }

  // TR-40: nothing admitted (gate-pass, start, re-queue after an action) whose peak exceeds 2x steady-state.
  for (const entry of world.log) {
    if (!ADMITTING.has(entry.event) || !(entry.to === 'queued' || entry.to === 'running')) continue;
    const m = world.migrations.find((x) => x.id === entry.id);
    assert.ok(m);
    assert.ok(entry.steady, `${where}: ${m.id} admitted for unknown tenant ${m.tenant}`);
    for (const [d, peak] of Object.entries(m.peak)) {
      const steady = entry.steady[d];
      assert.ok(steady !== undefined, `${where}: ${m.id} admitted with ${d} but tenant has no steady-state ${d}`);
      assert.ok(BigInt(peak) <= 2n * BigInt(steady), `${where}: ${m.id} admitted with ${d} peak ${peak} > 2 x ${steady}`);
    }
  }

  // Capacity: the peaks of running migrations never add up to more than the node has.
  for (const [d, cap] of Object.entries(world.capacity)) {
    const total = world.migrations.filter((m) => m.state === 'running').reduce((sum, m) => sum + (m.peak[d] ?? 0), 0);
    assert.ok(total <= cap, `${where}: running ${d} peaks ${total} > capacity ${cap}`);
  }

  // Attempts: only a start creates one, and everything that holds its tenant has run at least once.
  for (const m of world.migrations) {
    if (m.state === 'running' || m.state === 'held') assert.ok(m.attempts > 0, `${where}: ${m.id} ${m.state} with no attempt`);
  }
}

void test('random interleavings keep one holder per tenant, held until acted on, 2x admission and capacity', () => {
  fc.assert(
    fc.property(worldArb, ({ steady, capacity, commands }) => {
      const world: World = {
        tenants: new Map(
          TENANT_IDS.map((id, i) => [
            id,
            {
              id,
              steadyState: { ...(steady[i] as { cpu: number; memory: number }) },
              data: `/srv/${id}`,
              runAs: { uid: 200000, gid: 200000 },
              allowRoot: false,
            },
          ]),
        ),
        capacity,
        migrations: [],
        log: [],
      };
      for (const c of commands) {
        const before = new Map(world.migrations.map((m) => [m.id, m.state] as const));
        world.log = [];
        run(world, c);
        checkInvariants(world, before, c);
      }
    }),
    { numRuns: 1000 },
  );
  // The world must actually have exercised the paths the invariants are about.
  for (const [what, count] of Object.entries(seen)) assert.ok(count > 0, `never observed: ${what}`);
});
