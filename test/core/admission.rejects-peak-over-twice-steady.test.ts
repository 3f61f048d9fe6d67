import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { admit, describeRejection, PEAK_FACTOR } from '../../src/core/admission.ts';
import type { Resources, Tenant } from '../../src/core/types.ts';

const NOW = new Date('2025-01-02T03:04:05.000Z');
/** Steady-states for which 2 * steady + 1 is still a safe integer, so the peak is representable. */
const steadyValue = fc.oneof(fc.nat({ max: 4096 }), fc.nat({ max: Math.floor((Number.MAX_SAFE_INTEGER - 1) / 2) }));
const dimension = fc.constantFrom('cpu', 'memory', 'ephemeral-storage', 'pids');

function tenant(steadyState: Resources): Tenant {
  return { id: 'shop', steadyState, data: '/srv/shop', runAs: { uid: 200000, gid: 200000 }, allowRoot: false };
}

void test('PEAK_FACTOR is 2', () => {
  assert.equal(PEAK_FACTOR, 2);
});

void test('a peak of exactly 2 x steady-state is admitted, in every dimension', () => {
  fc.assert(
    fc.property(fc.dictionary(dimension, steadyValue, { minKeys: 1 }), (steady) => {
      const peak = Object.fromEntries(Object.entries(steady).map(([d, v]) => [d, 2 * v]));
      const verdict = admit({ tenantId: 'shop', peak, tenant: tenant(steady), capacity: {}, now: NOW });
      assert.equal(verdict.ok, true, describeRejection(verdict));
      assert.deepEqual(verdict.reasons, []);
      assert.ok(verdict.dimensions.every((d) => d.ok));
    }),
    { numRuns: 1000 },
  );
});

void test('a peak of 2 x steady-state + 1 is rejected with PEAK_EXCEEDS_CAP carrying the numbers', () => {
  fc.assert(
    fc.property(dimension, steadyValue, steadyValue, (over, steady, other) => {
      const steadyState = { [over]: steady, extra: other };
      const peak = { [over]: 2 * steady + 1, extra: other };
      const verdict = admit({ tenantId: 'shop', peak, tenant: tenant(steadyState), capacity: {}, now: NOW });
      assert.equal(verdict.ok, false);
      assert.equal(verdict.reasons.length, 1, describeRejection(verdict));
      const [reason] = verdict.reasons;
      assert.ok(reason);
      assert.equal(reason.code, 'PEAK_EXCEEDS_CAP');
      assert.equal(reason.dimension, over);
      assert.equal(reason.peak, 2 * steady + 1);
      assert.equal(reason.steadyState, steady);
      assert.equal(reason.cap, 2 * steady);
      assert.equal(typeof reason.peak, 'number');
      assert.equal(typeof reason.cap, 'number');
      const bad = verdict.dimensions.find((d) => d.dimension === over);
      assert.equal(bad?.ok, false);
      assert.equal(verdict.dimensions.find((d) => d.dimension === 'extra')?.ok, true);
    }),
    { numRuns: 1000 },
  );
});

void test('admit agrees with peak <= 2 * steady for arbitrary integer pairs', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (steady, peakValue) => {
      const verdict = admit({
        tenantId: 'shop',
        peak: { memory: peakValue },
        tenant: tenant({ memory: steady }),
        capacity: {},
        now: NOW,
      });
      assert.equal(verdict.ok, BigInt(peakValue) <= 2n * BigInt(steady));
    }),
    { numRuns: 1000 },
  );
});

void test('the example from the design: 3Gi peak over 1Gi steady-state memory', () => {
  const verdict = admit({
    tenantId: 'shop',
    peak: { cpu: 1000, memory: 3221225472 },
    tenant: tenant({ cpu: 1000, memory: 1073741824 }),
    capacity: {},
    now: NOW,
  });
  assert.equal(verdict.ok, false);
  assert.deepEqual(
    verdict.reasons.map(({ message: _message, ...rest }) => rest),
    [{ code: 'PEAK_EXCEEDS_CAP', dimension: 'memory', peak: 3221225472, steadyState: 1073741824, cap: 2147483648 }],
  );
  const message = verdict.reasons[0]?.message ?? '';
  assert.match(message, /memory peak 3Gi exceeds 2 x steady-state 1Gi of tenant shop/);
  assert.match(message, /lower the peak or raise the tenant's steady-state/);
  assert.equal(describeRejection(verdict), message);
});

void test('every over-cap dimension gets its own reason', () => {
  const verdict = admit({
    tenantId: 'shop',
    peak: { cpu: 2001, memory: 2049 },
    tenant: tenant({ cpu: 1000, memory: 1024 }),
    capacity: {},
    now: NOW,
  });
  assert.deepEqual(
    verdict.reasons.map((r) => [r.code, r.dimension]),
    [
      ['PEAK_EXCEEDS_CAP', 'cpu'],
      ['PEAK_EXCEEDS_CAP', 'memory'],
    ],
  );
});
