import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuantity } from '../../src/core/quantity.ts';

const cases: ReadonlyArray<readonly [string | number, number]> = [
  ['1500m', 1500],
  ['1.5', 1500],
  ['2', 2000],
  ['0.5', 500],
  ['.25', 250],
  ['1m', 1],
  ['0', 0],
  ['1e-3', 1],
  ['2k', 2_000_000],
  [1.5, 1500],
  [2, 2000],
  [0.5, 500],
  [0.001, 1],
];

for (const [raw, millicores] of cases) {
  void test(`cpu ${JSON.stringify(raw)} is ${millicores} millicores`, () => {
    assert.equal(parseQuantity('cpu', raw), millicores);
  });
}

void test('the same text means millicores for cpu but whole units for other dimensions', () => {
  assert.equal(parseQuantity('cpu', '3'), 3000);
  assert.equal(parseQuantity('pids', '3'), 3);
});
