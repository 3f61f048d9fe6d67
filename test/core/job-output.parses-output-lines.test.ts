import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CHECKPOINT_LENGTH, parseOutputLine } from '../../src/core/job-output.ts';

void test('a checkpoint line gives its text, spaces and all', () => {
  assert.deepEqual(parseOutputLine('::ferry::checkpoint row-5000'), { kind: 'checkpoint', text: 'row-5000' });
  assert.deepEqual(parseOutputLine('::ferry::checkpoint {"table": "users", "id": 42}'), {
    kind: 'checkpoint',
    text: '{"table": "users", "id": 42}',
  });
});

void test('a progress line gives done and total', () => {
  assert.deepEqual(parseOutputLine('::ferry::progress 3/10'), { kind: 'progress', done: 3, total: 10 });
  assert.deepEqual(parseOutputLine('::ferry::progress 0/0'), { kind: 'progress', done: 0, total: 0 });
  assert.deepEqual(parseOutputLine('::ferry::progress  7/8 '), { kind: 'progress', done: 7, total: 8 });
});

void test('a CRLF line end is not part of the signal', () => {
  assert.deepEqual(parseOutputLine('::ferry::checkpoint row-9\r'), { kind: 'checkpoint', text: 'row-9' });
  assert.deepEqual(parseOutputLine('::ferry::progress 1/2\r'), { kind: 'progress', done: 1, total: 2 });
});

void test('a long checkpoint is cut to MAX_CHECKPOINT_LENGTH', () => {
  const signal = parseOutputLine(`::ferry::checkpoint ${'x'.repeat(MAX_CHECKPOINT_LENGTH + 100)}`);
  assert.equal(signal?.kind, 'checkpoint');
  assert.equal(signal?.kind === 'checkpoint' ? signal.text.length : -1, MAX_CHECKPOINT_LENGTH);
});

const junk = [
  '',
  'copied 5000 rows',
  ' ::ferry::checkpoint indented',
  'log: ::ferry::checkpoint in the middle',
  '::ferry::',
  '::ferry::checkpointx abc',
  '::ferry::CHECKPOINT abc',
  '::ferry::progress',
  '::ferry::progress 3',
  '::ferry::progress 3/',
  '::ferry::progress a/b',
  '::ferry::progress -1/10',
  '::ferry::progress 1.5/10',
  '::ferry::progress 3 / 10',
  '::ferry::progress 1234567890123456/2',
  '::ferry::unknown thing',
  ':ferry::checkpoint x',
];
for (const line of junk) {
  void test(`${JSON.stringify(line)} is log, not a signal`, () => {
    assert.equal(parseOutputLine(line), null);
  });
}
