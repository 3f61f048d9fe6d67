import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuantity } from '../../src/core/quantity.ts';

const Ki = 1024;
const Mi = 1024 ** 2;
const Gi = 1024 ** 3;

const cases: ReadonlyArray<readonly [string | number, number]> = [
  ['2Gi', 2 * Gi],
  ['512Mi', 512 * Mi],
  ['1G', 1_000_000_000],
  ['1.5Gi', 1.5 * Gi],
  ['0.5Ki', 512],
  ['1Ki', Ki],
  ['1Ti', 1024 ** 4],
  ['1e3', 1000],
  ['1E3', 1000],
  ['5e2', 500],
  ['1k', 1000],
  ['1M', 1_000_000],
  ['123', 123],
  ['0', 0],
  ['9007199254740991', Number.MAX_SAFE_INTEGER],
  [1024, 1024],
  [0, 0],
  [1e9, 1_000_000_000],
];

for (const [raw, bytes] of cases) {
  void test(`memory ${JSON.stringify(raw)} is ${bytes} bytes`, () => {
    assert.equal(parseQuantity('memory', raw), bytes);
  });
}

void test('results are exact integers, never rounded floats', () => {
  // 1.1Gi is 1181116006.4 bytes: not whole, so it must be refused rather than rounded.
  assert.throws(() => parseQuantity('memory', '1.1Gi'));
  assert.equal(parseQuantity('memory', '1.25Gi'), 1342177280);
  assert.ok(Number.isSafeInteger(parseQuantity('memory', '3.75Gi')));
});
