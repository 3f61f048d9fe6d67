import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideStarts, type QueuedMigration, type SchedulingInput } from '../../src/core/scheduling.ts';
import type { Resources } from '../../src/core/types.ts';

const big = { cpu: 100_000, memory: 1024 ** 4 };
const small = { cpu: 500, memory: 1024 ** 3 };

function q(id: string, tenant: string, seq: number, peak: Resources = small): QueuedMigration {
  return { id, tenant, peak, seq };
}

function decide(partial: Partial<SchedulingInput> & Pick<SchedulingInput, 'queued'>): string[] {
  return decideStarts({ holders: new Map(), inUse: {}, capacity: big, ...partial });
}

void test('queued migrations of distinct tenants start together', () => {
  assert.deepEqual(decide({ queued: [q('m1', 'a', 1), q('m2', 'b', 2), q('m3', 'c', 3)] }).sort(), ['m1', 'm2', 'm3']);
});

void test('at most one migration per tenant starts per decision, the oldest first', () => {
  const starts = decide({ queued: [q('young', 'a', 5), q('old', 'a', 1), q('mid', 'a', 3), q('other', 'b', 4)] });
  assert.deepEqual(starts.sort(), ['old', 'other']);
});

void test('a tenant held by another migration blocks its queued ones', () => {
  const holders = new Map([['a', 'failed-one']]);
  assert.deepEqual(decide({ queued: [q('m1', 'a', 1), q('m2', 'a', 2), q('m3', 'b', 3)], holders }), ['m3']);
});

void test('the holder of a tenant goes before older queued ones of that tenant', () => {
  const holders = new Map([['a', 'resumed']]);
  const starts = decide({ queued: [q('older', 'a', 1), q('resumed', 'a', 7)], holders });
  assert.deepEqual(starts, ['resumed']);
});

void test('a holder of another tenant does not block this one', () => {
  const holders = new Map([['b', 'x']]);
  assert.deepEqual(decide({ queued: [q('m1', 'a', 1)], holders }), ['m1']);
});

void test('capacity is never exceeded, counting what is already in use', () => {
  const capacity = { cpu: 2000, memory: 8 * 1024 ** 3 };
  const peak = { cpu: 1000, memory: 1024 ** 3 };
  const starts = decide({
    queued: [q('m1', 'a', 1, peak), q('m2', 'b', 2, peak), q('m3', 'c', 3, peak)],
    inUse: { cpu: 500, memory: 0 },
    capacity,
  });
  assert.deepEqual(starts, ['m1']);
});

void test('a peak exactly filling the remaining capacity starts', () => {
  const starts = decide({ queued: [q('m1', 'a', 1, { cpu: 1500, memory: 1 })], inUse: { cpu: 500 }, capacity: { cpu: 2000 } });
  assert.deepEqual(starts, ['m1']);
});

void test('a smaller migration of another tenant backfills behind one that does not fit', () => {
  const starts = decide({
    queued: [q('large', 'a', 1, { cpu: 3000, memory: 1 }), q('small', 'b', 2, { cpu: 1000, memory: 1 })],
    inUse: { cpu: 1000 },
    capacity: { cpu: 2500 },
  });
  assert.deepEqual(starts, ['small']);
});

void test('a younger migration of the same tenant does not overtake one that does not fit', () => {
  const starts = decide({
    queued: [q('large', 'a', 1, { cpu: 3000, memory: 1 }), q('small', 'a', 2, { cpu: 100, memory: 1 })],
    capacity: { cpu: 2000 },
  });
  assert.deepEqual(starts, []);
});

void test('dimensions without a capacity do not limit starts', () => {
  const starts = decide({ queued: [q('m1', 'a', 1, { cpu: 1, gpu: 99 }), q('m2', 'b', 2, { cpu: 1, gpu: 99 })], capacity: { cpu: 10 } });
  assert.deepEqual(starts.sort(), ['m1', 'm2']);
});

void test('a dimension named like an Object.prototype member ("constructor") does not block a start forever', () => {
  assert.deepEqual(decide({ queued: [q('m1', 'a', 1, { cpu: 1, constructor: 1 })], capacity: { cpu: 10 } }), ['m1']);
});

const tenantsArb = fc.constantFrom('a', 'b', 'c', 'd');
const queuedArb = fc
  .array(fc.record({ tenant: tenantsArb, cpu: fc.integer({ min: 1, max: 4000 }), memory: fc.integer({ min: 1, max: 4096 }) }), { maxLength: 12 })
  .map((rows) => rows.map((r, i) => q(`m${i}`, r.tenant, i, { cpu: r.cpu, memory: r.memory })));

void test('property: starts respect holders, one per tenant, oldest first, and capacity', () => {
  fc.assert(
    fc.property(
      queuedArb,
      fc.dictionary(tenantsArb, fc.constantFrom('elsewhere', 'm0', 'm1', 'm2', 'm3', 'm4', 'm5')),
      fc.record({ cpu: fc.integer({ min: 0, max: 8000 }), memory: fc.integer({ min: 0, max: 8192 }) }),
      fc.record({ cpu: fc.integer({ min: 0, max: 4000 }), memory: fc.integer({ min: 0, max: 4096 }) }),
      (queued, holderRecord, capacity, inUse) => {
        const holders = new Map(Object.entries(holderRecord));
        const starts = decideStarts({ queued, holders, inUse, capacity });
        const started = starts.map((id) => queued.find((m) => m.id === id));
        assert.equal(new Set(starts).size, starts.length, 'no duplicates');
        const tenants = started.map((m) => m?.tenant);
        assert.equal(new Set(tenants).size, tenants.length, 'one per tenant');
        for (const m of started) {
          assert.ok(m, 'only queued ids start');
          const holder = holders.get(m.tenant);
          if (holder !== undefined) assert.equal(holder, m.id, `tenant ${m.tenant} is held by ${holder}`);
          else {
            const older = queued.filter((o) => o.tenant === m.tenant && o.seq < m.seq);
            assert.deepEqual(older, [], `${m.id} overtook an older migration of ${m.tenant}`);
          }
        }
        for (const d of ['cpu', 'memory'] as const) {
          const total = (inUse[d] ?? 0) + started.reduce((sum, m) => sum + (m?.peak[d] ?? 0), 0);
          if (started.length > 0) assert.ok(total <= capacity[d], `${d} ${total} > ${capacity[d]}`);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

void test('property: with room for everything and no holders, the oldest of every tenant starts', () => {
  fc.assert(
    fc.property(queuedArb, (queued) => {
      const starts = decideStarts({ queued, holders: new Map(), inUse: {}, capacity: {} });
      const oldest = new Map<string, string>();
      for (const m of [...queued].sort((a, b) => a.seq - b.seq)) if (!oldest.has(m.tenant)) oldest.set(m.tenant, m.id);
      assert.deepEqual([...starts].sort(), [...oldest.values()].sort());
    }),
    { numRuns: 500 },
  );
});
