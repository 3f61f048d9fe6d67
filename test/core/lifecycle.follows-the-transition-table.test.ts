import { test } from 'node:test';
import assert from 'node:assert/strict';
import { holdsTenant, isTerminal, transition, TRANSITIONS, type LifecycleEvent } from '../../src/core/lifecycle.ts';
import { MIGRATION_STATES, RECOVERY_ACTIONS, type MigrationState } from '../../src/core/types.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const EVENTS: readonly LifecycleEvent[] = [
  'approve',
  'gate-pass',
  'reject',
  'refuse',
  'start',
  'succeed',
  'fail',
  'wipe-and-retry',
  'resume',
  'accept-partial',
  'abandon',
  'cancel',
];

/** The lifecycle of README.md, written out independently of the table under test. */
const EXPECTED: ReadonlyArray<readonly [MigrationState, LifecycleEvent, MigrationState]> = [
  ['filed', 'approve', 'approved'],
  ['filed', 'reject', 'rejected'],
  ['filed', 'cancel', 'cancelled'],
  ['approved', 'gate-pass', 'queued'],
  ['approved', 'reject', 'rejected'],
  ['approved', 'cancel', 'cancelled'],
  ['queued', 'start', 'running'],
  ['queued', 'reject', 'rejected'],
  ['queued', 'refuse', 'held'],
  ['queued', 'cancel', 'cancelled'],
  ['running', 'succeed', 'succeeded'],
  ['running', 'fail', 'held'],
  ['running', 'cancel', 'cancelled'],
  ['held', 'wipe-and-retry', 'queued'],
  ['held', 'resume', 'queued'],
  ['held', 'accept-partial', 'accepted-partial'],
  ['held', 'abandon', 'abandoned'],
  ['held', 'cancel', 'cancelled'],
];

for (const [from, event, to] of EXPECTED) {
  void test(`${from} --${event}--> ${to}`, () => {
    assert.equal(transition(from, event), to);
  });
}

void test('the table holds exactly the expected rows, no more', () => {
  const actual = TRANSITIONS.map((r) => `${r.from}:${r.event}:${r.to}`).sort();
  const expected = EXPECTED.map(([f, e, t]) => `${f}:${e}:${t}`).sort();
  assert.deepEqual(actual, expected);
});

const legal = new Set(EXPECTED.map(([f, e]) => `${f}:${e}`));
for (const from of MIGRATION_STATES) {
  for (const event of EVENTS) {
    if (legal.has(`${from}:${event}`)) continue;
    void test(`${from} --${event}--> is illegal and names the state`, () => {
      const err = assertFerryError(() => transition(from, event), 'FERRY_WRONG_STATE');
      assert.equal(err.status, 409);
      assert.match(err.message, new RegExp(`the migration is ${from}[;,]`));
      assert.match(err.message, new RegExp(event));
      assert.deepEqual(err.details, { state: from, event });
    });
  }
}

void test('an illegal move says where the event is allowed from', () => {
  assertFerryError(() => transition('running', 'resume'), 'FERRY_WRONG_STATE', /resume is allowed only from held/);
  assertFerryError(() => transition('succeeded', 'cancel'), 'FERRY_WRONG_STATE', /succeeded, which is final/);
});

void test('terminal states have no way out', () => {
  const terminal = MIGRATION_STATES.filter(isTerminal);
  assert.deepEqual([...terminal].sort(), ['abandoned', 'accepted-partial', 'cancelled', 'rejected', 'succeeded']);
  for (const state of terminal) {
    for (const event of EVENTS) assertFerryError(() => transition(state, event), 'FERRY_WRONG_STATE');
    assert.ok(!TRANSITIONS.some((r) => r.from === state), `${state} has an outgoing row`);
  }
});

void test('every non-terminal state can be cancelled', () => {
  for (const state of MIGRATION_STATES.filter((s) => !isTerminal(s))) assert.equal(transition(state, 'cancel'), 'cancelled');
});

void test('held is left only by the four recovery actions and cancel', () => {
  const leaving = EVENTS.filter((e) => TRANSITIONS.some((r) => r.from === 'held' && r.event === e));
  assert.deepEqual([...leaving].sort(), [...RECOVERY_ACTIONS, 'cancel'].sort());
  for (const event of EVENTS) {
    if (leaving.includes(event)) continue;
    assertFerryError(() => transition('held', event), 'FERRY_WRONG_STATE', /the migration is held/);
  }
});

void test('only a failure or a refusal leads into held', () => {
  const into = TRANSITIONS.filter((r) => r.to === 'held').map((r) => `${r.from}:${r.event}`);
  assert.deepEqual(into.sort(), ['queued:refuse', 'running:fail']);
});

void test('holdsTenant: running, held, and queued after an attempt hold the tenant; nothing else does', () => {
  for (const state of MIGRATION_STATES) {
    for (const attempts of [0, 1, 3]) {
      const expected = state === 'running' || state === 'held' || (state === 'queued' && attempts > 0);
      assert.equal(holdsTenant(state, attempts), expected, `${state} after ${attempts} attempts`);
    }
  }
});
