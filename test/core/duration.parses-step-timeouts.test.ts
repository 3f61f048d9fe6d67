import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../../src/core/duration.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const ok: ReadonlyArray<readonly [string | number, number]> = [
  ['30m', 1_800_000],
  ['90s', 90_000],
  ['500ms', 500],
  ['1h30m', 5_400_000],
  ['1m30s', 90_000],
  ['2d', 172_800_000],
  ['30d', 30 * 86_400_000],
  [' 5s ', 5_000],
  [60, 60_000],
];
for (const [raw, ms] of ok) {
  void test(`timeout ${JSON.stringify(raw)} is ${ms} ms`, () => assert.equal(parseDuration('t', raw), ms));
}

const bad: ReadonlyArray<string | number> = ['soon', '', '0s', '30', '1.5h', '-5m', '5 m', '31d', '30d1ms', 0, -1, 1.5, 'm', '1h'.repeat(20)];
for (const raw of bad) {
  void test(`timeout ${JSON.stringify(raw)} is rejected naming the field`, () => {
    assertFerryError(() => parseDuration('steps.0.timeout', raw), 'FERRY_INVALID_REQUEST', /^steps\.0\.timeout: /);
  });
}
