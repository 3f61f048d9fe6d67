import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admit, describeRejection } from '../../src/core/admission.ts';
import type { Tenant } from '../../src/core/types.ts';

const NOW = new Date('2025-01-02T03:04:05.000Z');
const shop: Tenant = { id: 'shop', steadyState: { cpu: 1000, memory: 1024 ** 3 }, data: '/srv/shop', runAs: { uid: 200000, gid: 200000 }, allowRoot: false };

void test('an unknown tenant is rejected with UNKNOWN_TENANT and a way out', () => {
  const verdict = admit({ tenantId: 'ghost', peak: { cpu: 1, memory: 1 }, tenant: null, capacity: {}, now: NOW });
  assert.equal(verdict.ok, false);
  assert.deepEqual(
    verdict.reasons.map((r) => r.code),
    ['UNKNOWN_TENANT'],
  );
  assert.match(verdict.reasons[0]?.message ?? '', /tenant ghost is not known.*PUT \/v1\/tenants\/ghost/);
  assert.equal(verdict.steadyState, null);
  assert.ok(
    verdict.dimensions.every((d) => !d.ok),
    'no dimension is ok for an unknown tenant',
  );
});

void test('a peak dimension without a steady-state is rejected (fail closed), even a tiny one', () => {
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 1000, memory: 1024, gpu: 0 }, tenant: shop, capacity: {}, now: NOW });
  assert.equal(verdict.ok, false);
  assert.equal(verdict.reasons.length, 1);
  const [reason] = verdict.reasons;
  assert.equal(reason?.code, 'NO_STEADY_STATE');
  assert.equal(reason?.dimension, 'gpu');
  assert.equal(reason?.peak, 0);
  assert.match(reason?.message ?? '', /tenant shop has no steady-state gpu/);
  assert.match(reason?.message ?? '', /declare the tenant's steady-state gpu or drop gpu from the peak/);
  const gpu = verdict.dimensions.find((d) => d.dimension === 'gpu');
  assert.deepEqual(gpu, { dimension: 'gpu', peak: 0, steadyState: null, cap: null, capacity: null, ok: false });
});

void test('a peak over what the node can ever provide is rejected with PEAK_EXCEEDS_CAPACITY', () => {
  const verdict = admit({
    tenantId: 'shop',
    peak: { cpu: 2000, memory: 1024 },
    tenant: shop,
    capacity: { cpu: 1999, memory: 64 * 1024 ** 3 },
    now: NOW,
  });
  assert.equal(verdict.ok, false);
  assert.equal(verdict.reasons.length, 1);
  const { message, ...reason } = verdict.reasons[0] ?? { message: '' };
  assert.deepEqual(reason, { code: 'PEAK_EXCEEDS_CAPACITY', dimension: 'cpu', peak: 2000, steadyState: 1000, cap: 1999 });
  assert.match(message, /cpu peak 2 is more than this node can ever provide \(1999m\); lower the peak or run it on a larger node/);
});

void test('a peak equal to the node capacity is admitted', () => {
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 2000, memory: 1024 }, tenant: shop, capacity: { cpu: 2000 }, now: NOW });
  assert.equal(verdict.ok, true, describeRejection(verdict));
  assert.equal(verdict.dimensions.find((d) => d.dimension === 'cpu')?.capacity, 2000);
});

void test('over the cap and over the capacity gives both reasons', () => {
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 5000, memory: 1 }, tenant: shop, capacity: { cpu: 4000 }, now: NOW });
  assert.deepEqual(
    verdict.reasons.map((r) => r.code),
    ['PEAK_EXCEEDS_CAP', 'PEAK_EXCEEDS_CAPACITY'],
  );
});

void test('the verdict records the steady-state, capacity and time it was computed from', () => {
  const capacity = { cpu: 8000, memory: 16 * 1024 ** 3 };
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 1500, memory: 2 * 1024 ** 3 }, tenant: shop, capacity, now: NOW });
  assert.equal(verdict.ok, true, describeRejection(verdict));
  assert.equal(verdict.tenant, 'shop');
  assert.deepEqual(verdict.steadyState, { cpu: 1000, memory: 1024 ** 3 });
  assert.deepEqual(verdict.capacity, capacity);
  assert.equal(verdict.at, '2025-01-02T03:04:05.000Z');
  assert.deepEqual(verdict.dimensions, [
    { dimension: 'cpu', peak: 1500, steadyState: 1000, cap: 2000, capacity: 8000, ok: true },
    { dimension: 'memory', peak: 2 * 1024 ** 3, steadyState: 1024 ** 3, cap: 2 * 1024 ** 3, capacity: 16 * 1024 ** 3, ok: true },
  ]);
});

void test('drift is visible: the same request against a shrunk steady-state is refused and says so', () => {
  const peak = { cpu: 1500, memory: 1024 };
  const before = admit({ tenantId: 'shop', peak, tenant: shop, capacity: {}, now: NOW });
  const shrunk: Tenant = { ...shop, steadyState: { ...shop.steadyState, cpu: 500 } };
  const after = admit({ tenantId: 'shop', peak, tenant: shrunk, capacity: {}, now: NOW });
  assert.equal(before.ok, true);
  assert.equal(after.ok, false);
  assert.equal(before.steadyState?.cpu, 1000);
  assert.equal(after.steadyState?.cpu, 500);
  assert.equal(after.reasons[0]?.steadyState, 500);
});

void test('a cap beyond MAX_SAFE_INTEGER is compared exactly and never lets an overflow through', () => {
  const huge: Tenant = { id: 'shop', steadyState: { memory: Number.MAX_SAFE_INTEGER }, data: '/d', runAs: { uid: 200000, gid: 200000 }, allowRoot: false };
  const verdict = admit({ tenantId: 'shop', peak: { memory: Number.MAX_SAFE_INTEGER }, tenant: huge, capacity: {}, now: NOW });
  assert.equal(verdict.ok, true, describeRejection(verdict));
});

void test('a peak dimension named like an Object.prototype member ("constructor") is judged like any other', () => {
  // request-schema's DIMENSION pattern (^[a-z][a-z0-9-]{0,31}$) accepts "constructor".
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 1000, memory: 1024, constructor: 1 }, tenant: shop, capacity: {}, now: NOW });
  assert.equal(verdict.ok, false);
  assert.equal(verdict.reasons[0]?.code, 'NO_STEADY_STATE');
  assert.equal(verdict.reasons[0]?.dimension, 'constructor');
});

void test('a peak that omits a dimension of the steady-state is refused: it would run unlimited', () => {
  const withPids: Tenant = { ...shop, steadyState: { ...shop.steadyState, pids: 50 } };
  const verdict = admit({
    tenantId: 'shop',
    peak: { cpu: 1000, memory: 1024 ** 3 },
    tenant: withPids,
    capacity: {},
    enforced: ['cpu', 'memory', 'pids'],
    now: NOW,
  });
  assert.equal(verdict.ok, false);
  assert.deepEqual(
    verdict.reasons.map((r) => [r.code, r.dimension]),
    [['PEAK_MISSING_DIMENSION', 'pids']],
  );
  assert.match(verdict.reasons[0]?.message ?? '', /add pids to the peak/);
  assert.equal(
    admit({
      tenantId: 'shop',
      peak: { cpu: 1000, memory: 1024 ** 3, pids: 100 },
      tenant: withPids,
      capacity: {},
      enforced: ['cpu', 'memory', 'pids'],
      now: NOW,
    }).ok,
    true,
  );
});

void test('a dimension the substrate does not enforce is refused, with what it does enforce', () => {
  const withDisk: Tenant = { ...shop, steadyState: { ...shop.steadyState, 'ephemeral-storage': 10 * 1024 ** 2 } };
  const peak = { cpu: 1000, memory: 1024 ** 3, 'ephemeral-storage': 20 * 1024 ** 2 };
  const verdict = admit({ tenantId: 'shop', peak, tenant: withDisk, capacity: {}, enforced: ['cpu', 'memory', 'pids'], now: NOW });
  assert.deepEqual(
    verdict.reasons.map((r) => [r.code, r.dimension]),
    [['DIMENSION_NOT_ENFORCED', 'ephemeral-storage']],
  );
  assert.match(verdict.reasons[0]?.message ?? '', /cannot enforce a ephemeral-storage limit \(it enforces cpu, memory, pids\)/);
  assert.equal(verdict.dimensions.find((d) => d.dimension === 'ephemeral-storage')?.ok, false);
  // A substrate that enforces nothing at all says so elsewhere (limitsEnforced: false); no dimension check then.
  assert.equal(admit({ tenantId: 'shop', peak, tenant: withDisk, capacity: {}, enforced: null, now: NOW }).ok, true);
});
