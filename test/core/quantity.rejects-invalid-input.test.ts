import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuantity } from '../../src/core/quantity.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const rejected: ReadonlyArray<readonly [string, string | number, string]> = [
  ['memory', '-1', 'negative text'],
  ['memory', '-1Gi', 'negative with suffix'],
  ['cpu', -0.5, 'negative number'],
  ['memory', 'abc', 'garbage'],
  ['memory', '', 'empty'],
  ['memory', '   ', 'blank'],
  ['memory', '1 Gi', 'space before suffix'],
  ['cpu', ' 1', 'leading space (Kubernetes refuses it)'],
  ['cpu', '1 ', 'trailing space (Kubernetes refuses it)'],
  ['memory', '\t512Mi\n', 'surrounding tab and newline'],
  ['memory', '1GiB', 'unknown suffix'],
  ['memory', '1K', 'upper-case K is not a Kubernetes suffix'],
  ['memory', '1e3Gi', 'exponent and suffix together'],
  ['memory', '0x10', 'hex'],
  ['memory', '1..5', 'two dots'],
  ['memory', '.', 'lone dot'],
  ['cpu', '0.5m', 'fractional millicores'],
  ['cpu', '1.0005', 'fractional millicores from a decimal'],
  ['memory', '0.5', 'fractional bytes'],
  ['memory', '1.1Gi', 'fractional bytes from a binary suffix'],
  ['memory', '1e-1', 'fractional bytes from a negative exponent'],
  ['memory', '9007199254740992', 'one past MAX_SAFE_INTEGER'],
  ['memory', '8Ei', 'too large with a suffix'],
  ['cpu', '9007199254741', 'too large once counted in millicores'],
  ['memory', 2 ** 53, 'too large number'],
  ['memory', 1e21, 'huge number in exponent notation'],
  ['memory', '1e999', 'huge exponent'],
  ['memory', '1e9999', 'exponent longer than three digits'],
  ['memory', '1'.repeat(41), 'longer than 40 characters'],
  ['memory', '1Gi'.repeat(20), 'overlong garbage'],
  ['memory', Number.NaN, 'NaN'],
  ['memory', Number.POSITIVE_INFINITY, 'Infinity'],
];

for (const [dimension, raw, why] of rejected) {
  void test(`${dimension} ${JSON.stringify(String(raw)).slice(0, 30)} is rejected (${why})`, () => {
    const err = assertFerryError(() => parseQuantity(dimension, raw), 'FERRY_INVALID_QUANTITY');
    assert.ok(err.message.startsWith(`${dimension}: `), `message should name the dimension: ${err.message}`);
    assert.equal(err.details.dimension, dimension);
    assert.equal(err.status, 422);
  });
}

void test('messages say what is wrong and how to write it', () => {
  assertFerryError(() => parseQuantity('memory', 'lots'), 'FERRY_INVALID_QUANTITY', /write it like 1500m, 1\.5, 2Gi or 512Mi/);
  assertFerryError(() => parseQuantity('memory', '-5'), 'FERRY_INVALID_QUANTITY', /negative/);
  assertFerryError(() => parseQuantity('cpu', '0.5m'), 'FERRY_INVALID_QUANTITY', /millicores.*smallest cpu unit is 1m/);
  assertFerryError(() => parseQuantity('memory', '0.5'), 'FERRY_INVALID_QUANTITY', /whole number of bytes/);
  assertFerryError(() => parseQuantity('memory', '1e999'), 'FERRY_INVALID_QUANTITY', /too large/);
});

void test('an overlong input is quoted cut short in the message', () => {
  const err = assertFerryError(() => parseQuantity('memory', 'x'.repeat(10_000)), 'FERRY_INVALID_QUANTITY');
  assert.ok(err.message.length < 200, `message is ${err.message.length} characters long`);
});

void test('the largest safe integer is still accepted next to the rejected one', () => {
  assert.equal(parseQuantity('memory', String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  assert.equal(parseQuantity('cpu', '9007199254740.991'), Number.MAX_SAFE_INTEGER);
});
