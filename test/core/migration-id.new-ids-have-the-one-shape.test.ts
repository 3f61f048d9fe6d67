/**
 * Unit tests of src/core/migration-id.ts: an id made from a time and 8 random hex digits has the
 * shape the API accepts (MIGRATION_ID_PATTERN), for every time up to the largest safe integer, and
 * bad inputs are refused with a code rather than producing an id nothing would accept.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MIGRATION_ID_EXAMPLE, MIGRATION_ID_PATTERN, newMigrationIdText } from '../../src/core/migration-id.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

void test('an id is m-<time in base 36>-<random hex>', () => {
  assert.equal(newMigrationIdText(1_700_000_000_000, '7f2c01ab'), `m-${(1_700_000_000_000).toString(36)}-7f2c01ab`);
  assert.match(MIGRATION_ID_EXAMPLE, MIGRATION_ID_PATTERN);
});

void test('property: every id made has the shape the API accepts', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.stringMatching(/^[a-f0-9]{8}$/), (now, hex) => {
      assert.match(newMigrationIdText(now, hex), MIGRATION_ID_PATTERN);
    }),
  );
});

void test('the shape refuses ids that are not of it', () => {
  for (const id of ['', 'm--7f2c01ab', 'm-lx3k9a-7F2C01AB', 'm-lx3k9a-7f2c01a', 'x-lx3k9a-7f2c01ab', 'm-lx3k9a-7f2c01ab\n', '../m-lx3k9a-7f2c01ab']) {
    assert.doesNotMatch(id, MIGRATION_ID_PATTERN, JSON.stringify(id));
  }
});

void test('a bad time or random part is refused, not turned into an id', () => {
  assertFerryError(() => newMigrationIdText(-1, '7f2c01ab'), 'FERRY_INTERNAL', /Date\.now\(\)/);
  assertFerryError(() => newMigrationIdText(1.5, '7f2c01ab'), 'FERRY_INTERNAL');
  assertFerryError(() => newMigrationIdText(Number.NaN, '7f2c01ab'), 'FERRY_INTERNAL');
  assertFerryError(() => newMigrationIdText(1, '7F2C01AB'), 'FERRY_INTERNAL', /8 lower-case hex digits/);
  assertFerryError(() => newMigrationIdText(1, 'abc'), 'FERRY_INTERNAL');
});
