/** Unit tests of src/core/roles.ts: one ranking, filer ⊂ operator ⊂ admin, used by API tokens and tracker users. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROLES, roleAtLeast } from '../../src/core/roles.ts';

void test('each role holds itself and every role below it, and none above', () => {
  for (const [i, held] of ROLES.entries()) {
    for (const [j, needed] of ROLES.entries()) {
      assert.equal(roleAtLeast(held, needed), i >= j, `${held} for ${needed}`);
    }
  }
});

void test('the ranking is filer, operator, admin', () => {
  assert.deepEqual([...ROLES], ['filer', 'operator', 'admin']);
  assert.equal(roleAtLeast('admin', 'filer'), true);
  assert.equal(roleAtLeast('filer', 'operator'), false);
  assert.equal(roleAtLeast('operator', 'admin'), false);
});
