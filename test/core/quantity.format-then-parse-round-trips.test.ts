import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatQuantity, parseQuantity } from '../../src/core/quantity.ts';

const dimensions = fc.constantFrom('cpu', 'memory', 'ephemeral-storage', 'pids');
/** Mix small values, exact multiples of the binary and decimal units, and the whole safe range. */
const values = fc.oneof(
  fc.nat({ max: 10_000 }),
  fc.tuple(fc.nat({ max: 4096 }), fc.constantFrom(1000, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4)).map(([n, unit]) => n * unit),
  fc.maxSafeNat(),
);

void test('formatQuantity then parseQuantity gives back the same integer', () => {
  fc.assert(
    fc.property(dimensions, values, (dimension, value) => {
      assert.equal(parseQuantity(dimension, formatQuantity(dimension, value)), value);
    }),
    { numRuns: 2000 },
  );
});

void test('formatQuantity uses the readable units', () => {
  assert.equal(formatQuantity('cpu', 1500), '1500m');
  assert.equal(formatQuantity('cpu', 2000), '2');
  assert.equal(formatQuantity('memory', 3 * 1024 ** 3), '3Gi');
  assert.equal(formatQuantity('memory', 1536 * 1024 ** 2), '1536Mi');
  assert.equal(formatQuantity('memory', 1000), '1000');
  assert.equal(formatQuantity('pids', 1024), '1024');
});
