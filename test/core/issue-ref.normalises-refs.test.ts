import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssueRef, normaliseIssueRef, parseIssueRef } from '../../src/core/issue-ref.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const defaults = { tracker: 'github', repo: 'acme/platform' } as const;

void test('full refs of every tracker parse into their parts', () => {
  assert.deepEqual(parseIssueRef('github:acme/platform#742'), { tracker: 'github', repo: 'acme/platform', number: 742 });
  assert.deepEqual(parseIssueRef('gitea:ops/infra#1'), { tracker: 'gitea', repo: 'ops/infra', number: 1 });
  assert.deepEqual(parseIssueRef('gitlab:group/sub/repo#9'), { tracker: 'gitlab', repo: 'group/sub/repo', number: 9 });
});

void test('a full ref keeps its own tracker and repo even when defaults exist', () => {
  assert.equal(normaliseIssueRef('gitlab:a/b#3', defaults), 'gitlab:a/b#3');
});

void test('surrounding whitespace is ignored', () => {
  assert.equal(normaliseIssueRef('  github:acme/platform#742\n'), 'github:acme/platform#742');
});

void test('a bare #742 takes the default tracker and repo', () => {
  assert.equal(normaliseIssueRef('#742', defaults), 'github:acme/platform#742');
  assert.deepEqual(parseIssueRef('#5', { tracker: 'gitea', repo: 'x/y' }), { tracker: 'gitea', repo: 'x/y', number: 5 });
});

void test('a bare ref without defaults is an error that says how to write it', () => {
  assertFerryError(() => parseIssueRef('#742'), 'FERRY_INVALID_REQUEST', /no default is configured; write it as github:owner\/repo#742/);
});

const garbage = [
  '',
  '742',
  '#',
  '#0',
  '#07',
  '#12345678901',
  'github:acme/platform',
  'github:acme#742',
  'github:/platform#742',
  'jira:acme/platform#742',
  'GitHub:acme/platform#742',
  'github:acme/platform#-1',
  'github:acme/platform#1.5',
  'github:acme/../etc#1',
  'github:./x#1',
  'github:acme/plat form#1',
  'github:acme/platform#742 extra',
  'https://github.com/acme/platform/issues/742',
];
for (const raw of garbage) {
  void test(`${JSON.stringify(raw)} is not an issue ref`, () => {
    assertFerryError(() => parseIssueRef(raw, defaults), 'FERRY_INVALID_REQUEST', /write it as <tracker>:<owner>\/<repo>#<number>/);
  });
}

void test('a very long garbage ref is quoted cut short', () => {
  const err = assertFerryError(() => parseIssueRef('x'.repeat(5000)), 'FERRY_INVALID_REQUEST');
  assert.ok(err.message.length < 400, `message is ${err.message.length} characters long`);
});

void test('formatIssueRef is the inverse of parseIssueRef on normalised refs', () => {
  for (const ref of ['github:acme/platform#742', 'gitlab:g/s/r#1', 'gitea:a.b/c_d-e#9999999999']) {
    assert.equal(formatIssueRef(parseIssueRef(ref)), ref);
  }
});
