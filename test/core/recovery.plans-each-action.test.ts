import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeActions, heldFactsOf, planRecovery, type HeldFacts } from '../../src/core/recovery.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const facts: HeldFacts = {
  attempts: 2,
  failedStep: 1,
  checkpoint: 'row-5000',
  snapshotAt: '2025-01-02T03:04:05.000Z',
  hasWipeStep: true,
  stepNames: ['copy-files', 'rebuild-index', 'verify'],
};

void test('wipe-and-retry prefers the snapshot and restarts from step 0 without a checkpoint', () => {
  assert.deepEqual(planRecovery('wipe-and-retry', facts), { action: 'wipe-and-retry', restore: 'snapshot', fromStep: 0, checkpoint: null });
});

void test('wipe-and-retry without a snapshot uses the wipe step', () => {
  assert.deepEqual(planRecovery('wipe-and-retry', { ...facts, snapshotAt: null }), {
    action: 'wipe-and-retry',
    restore: 'wipe-step',
    fromStep: 0,
    checkpoint: null,
  });
});

void test('wipe-and-retry without snapshot and without wipe step is refused with FERRY_NO_WIPE', () => {
  const err = assertFerryError(
    () => planRecovery('wipe-and-retry', { ...facts, snapshotAt: null, hasWipeStep: false }),
    'FERRY_NO_WIPE',
    /no pre-migration snapshot and its request has no wipe step/,
  );
  assert.equal(err.status, 409);
  assert.match(err.message, /choose resume, accept-partial or abandon/);
});

void test('wipe-and-retry with a snapshot but no wipe step still works', () => {
  assert.equal(planRecovery('wipe-and-retry', { ...facts, hasWipeStep: false }).action, 'wipe-and-retry');
});

void test('resume restarts at the failed step with its checkpoint', () => {
  assert.deepEqual(planRecovery('resume', facts), { action: 'resume', fromStep: 1, checkpoint: 'row-5000' });
  assert.deepEqual(planRecovery('resume', { ...facts, failedStep: 2, checkpoint: null }), { action: 'resume', fromStep: 2, checkpoint: null });
});

void test('resume does not need a way to wipe', () => {
  assert.equal(planRecovery('resume', { ...facts, snapshotAt: null, hasWipeStep: false }).action, 'resume');
});

void test('accept-partial and abandon plan nothing but themselves, whatever the facts', () => {
  for (const f of [facts, { ...facts, snapshotAt: null, hasWipeStep: false }]) {
    assert.deepEqual(planRecovery('accept-partial', f), { action: 'accept-partial' });
    assert.deepEqual(planRecovery('abandon', f), { action: 'abandon' });
  }
});

void test('describeActions says what each action would do for this migration', () => {
  const text = describeActions(facts);
  assert.match(text['wipe-and-retry'], /restores the snapshot taken at 2025-01-02T03:04:05.000Z/);
  assert.match(text.resume, /reruns from step 2 \(rebuild-index\) with checkpoint "row-5000"/);
  assert.match(text['accept-partial'], /keeps the tenant data/);
  assert.match(text.abandon, /keeps the tenant data/);
  assert.match(describeActions({ ...facts, snapshotAt: null })['wipe-and-retry'], /runs the request's wipe step/);
  assert.match(describeActions({ ...facts, snapshotAt: null, hasWipeStep: false })['wipe-and-retry'], /not available/);
  assert.match(describeActions({ ...facts, checkpoint: null }).resume, /with no checkpoint/);
});

void test('heldFactsOf: the recorded failed step, else the last attempt step, else the first; its own checkpoint only', () => {
  const base = { attempts: 2, snapshot: null, request: { steps: [{ name: 'copy' }, { name: 'index' }] } };
  const facts = heldFactsOf({ ...base, failedStep: 1, checkpoint: { step: 1, text: '42' } }, 0);
  assert.equal(facts.failedStep, 1);
  assert.equal(facts.checkpoint, '42');
  assert.equal(heldFactsOf({ ...base, failedStep: 1, checkpoint: { step: 0, text: '7' } }).checkpoint, null, "another step's checkpoint does not count");
  assert.equal(heldFactsOf({ ...base, failedStep: null, checkpoint: null }, 1).failedStep, 1);
  assert.equal(heldFactsOf({ ...base, failedStep: null, checkpoint: null }).failedStep, 0);
  assert.equal(heldFactsOf({ ...base, failedStep: -1, checkpoint: null }).failedStep, -1, 'the wipe step is a failed step too');
  assert.deepEqual(heldFactsOf({ ...base, failedStep: 0, checkpoint: null }).stepNames, ['copy', 'index']);
  assert.equal(heldFactsOf({ ...base, failedStep: 0, checkpoint: null, request: { ...base.request, wipe: ['true'] } }).hasWipeStep, true);
});
