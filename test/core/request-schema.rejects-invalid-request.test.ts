import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMigrationRequest, parseTenantInput, type FieldProblem } from '../../src/core/request-schema.ts';
import { assertFerryError } from './support/assert-ferry-error.ts';

const valid = {
  issue: 'github:acme/platform#742',
  tenant: 'shop',
  peak: { cpu: '1500m', memory: '2Gi' },
  steps: [{ name: 'copy', run: ['true'] }],
};

/** Assert FERRY_INVALID_REQUEST with a `details.problems` list; return the problems. */
function problemsOf(input: unknown): FieldProblem[] {
  const err = assertFerryError(() => parseMigrationRequest(input), 'FERRY_INVALID_REQUEST');
  assert.equal(err.status, 422);
  const problems = err.details.problems;
  assert.ok(Array.isArray(problems) && problems.length > 0, `details.problems missing for: ${err.message}`);
  for (const p of problems as FieldProblem[]) {
    assert.equal(typeof p.path, 'string');
    assert.equal(typeof p.message, 'string');
  }
  return problems as FieldProblem[];
}

function paths(problems: FieldProblem[]): string[] {
  return problems.map((p) => p.path);
}

void test('the valid base document is accepted (so the rejections below are about the change)', () => {
  assert.equal(parseMigrationRequest(valid).tenant, 'shop');
});

void test('an unknown top-level field is an error, not ignored', () => {
  const problems = problemsOf({ ...valid, retries: 3 });
  assert.match(problems[0]?.message ?? '', /retries/);
});

void test('an unknown field in a step is an error, with the step in the path', () => {
  const problems = problemsOf({ ...valid, steps: [{ name: 'copy', run: ['true'], restart: 'always' }] });
  assert.deepEqual(paths(problems), ['steps.0']);
  assert.match(problems[0]?.message ?? '', /restart/);
});

void test('missing cpu or memory in the peak is an error naming it', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, peak: { memory: '1Gi' } })), ['peak.cpu']);
  assert.deepEqual(paths(problemsOf({ ...valid, peak: { cpu: '1' } })), ['peak.memory']);
});

void test('a bad quantity is an error naming the field and the dimension', () => {
  const problems = problemsOf({ ...valid, peak: { cpu: '0.5m', memory: '1Gi' } });
  assert.deepEqual(paths(problems), ['peak.cpu']);
  assert.match(problems[0]?.message ?? '', /millicores/);
});

const badTenants: ReadonlyArray<readonly [string, string]> = [
  ['../x', 'path-like'],
  ['a/b', 'slash'],
  ['Shop', 'upper case'],
  ['-shop', 'leading dash'],
  ['', 'empty'],
  ['a'.repeat(64), 'too long'],
  ['shöp', 'unicode'],
  ['shop\n', 'trailing newline'],
  ['sh op', 'space'],
];
for (const [tenant, why] of badTenants) {
  void test(`tenant id ${JSON.stringify(tenant.slice(0, 20))} is rejected (${why})`, () => {
    assert.deepEqual(paths(problemsOf({ ...valid, tenant })), ['tenant']);
  });
}

void test('no steps, or a step with an empty run, is an error', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, steps: [] })), ['steps']);
  assert.deepEqual(paths(problemsOf({ ...valid, steps: [{ name: 'x', run: [] }] })), ['steps.0.run']);
});

void test('a FERRY_* env name is rejected (Ferry sets those itself)', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, env: { FERRY_TENANT: '/elsewhere' } })), ['env.FERRY_TENANT']);
});

void test('a malformed env name is rejected', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, env: { 'BAD-NAME': 'x' } })), ['env.BAD-NAME']);
});

void test('a FERRY_* env name problem says why, not only "Invalid key"', () => {
  const problems = problemsOf({ ...valid, env: { FERRY_TENANT: '/elsewhere' } });
  assert.match(problems[0]?.message ?? '', /FERRY_\* names are set by Ferry/);
});

void test('a bad snapshot policy is an error', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, snapshot: 'sometimes' })), ['snapshot']);
});

void test('a document that is not an object is an error', () => {
  for (const input of [null, 'issue: x', 42, []]) problemsOf(input);
});

void test('every problem is listed, not only the first', () => {
  const problems = problemsOf({ ...valid, tenant: 'Bad', snapshot: 'x', extra: 1 });
  assert.ok(problems.length >= 3, JSON.stringify(problems));
});

void test('duplicate step names are rejected', () => {
  assertFerryError(
    () =>
      parseMigrationRequest({
        ...valid,
        steps: [
          { name: 'a', run: ['x'] },
          { name: 'a', run: ['y'] },
        ],
      }),
    'FERRY_INVALID_REQUEST',
    /steps\.1\.name: a is used twice/,
  );
});

void test('a bad step timeout is rejected naming the step', () => {
  assertFerryError(
    () => parseMigrationRequest({ ...valid, steps: [{ name: 'a', run: ['x'], timeout: 'soon' }] }),
    'FERRY_INVALID_REQUEST',
    /steps\.0\.timeout/,
  );
});

void test('a bad issue ref is rejected', () => {
  assertFerryError(() => parseMigrationRequest({ ...valid, issue: 'acme/platform 742' }), 'FERRY_INVALID_REQUEST', /not an issue ref/);
});

void test('duplicate step names, bad timeouts and bad issue refs carry details.problems like every other request error', () => {
  assert.deepEqual(
    paths(
      problemsOf({
        ...valid,
        steps: [
          { name: 'a', run: ['x'] },
          { name: 'a', run: ['y'] },
        ],
      }),
    ),
    ['steps.1.name'],
  );
  assert.deepEqual(paths(problemsOf({ ...valid, steps: [{ name: 'a', run: ['x'], timeout: 'soon' }] })), ['steps.0.timeout']);
  assert.deepEqual(paths(problemsOf({ ...valid, issue: 'nope' })), ['issue']);
});

void test('the tenant document rejects unknown fields and bad quantities', () => {
  assertFerryError(() => parseTenantInput({ steadyState: { cpu: '1', memory: '1Gi' }, owner: 'x' }), 'FERRY_INVALID_REQUEST');
  const err = assertFerryError(() => parseTenantInput({ steadyState: { cpu: '-1', memory: '1Gi' } }), 'FERRY_INVALID_REQUEST');
  assert.deepEqual(err.details.problems, [{ path: 'steadyState.cpu', message: 'cpu: "-1" is negative; quantities must be zero or more' }]);
});

void test('a tenant must declare its steady-state cpu and memory', () => {
  for (const steadyState of [{}, { cpu: '1' }, { memory: '1Gi' }]) {
    const err = assertFerryError(() => parseTenantInput({ steadyState }), 'FERRY_INVALID_REQUEST');
    assert.match(err.message, /steadyState\.(cpu|memory) must be declared/);
  }
});

void test('a NUL byte in anything that reaches a job is refused: run, wipe, env names and values, image', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, steps: [{ name: 'copy', run: ['rm', '-rf', '"$FERRY_TENANT_DATA"\0/'] }] })), ['steps.0.run.2']);
  assert.deepEqual(paths(problemsOf({ ...valid, wipe: ['sh', '-c', 'x\0y'] })), ['wipe.2']);
  assert.deepEqual(paths(problemsOf({ ...valid, env: { A: 'ok\0FERRY_TENANT_DATA=/' } })), ['env.A']);
  assert.deepEqual(paths(problemsOf({ ...valid, env: { A: { secret: 'x\0' } } })), ['env.A.secret']);
  assert.deepEqual(paths(problemsOf({ ...valid, image: 'img\0:1' })), ['image']);
  assert.match(problemsOf({ ...valid, env: { A: 'x\0' } })[0]?.message ?? '', /NUL/);
});

void test('a zero cpu or memory peak is refused: it could never run', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, peak: { cpu: '1', memory: '0' } })), ['peak.memory']);
  assert.deepEqual(paths(problemsOf({ ...valid, peak: { cpu: 0, memory: '1Gi' } })), ['peak.cpu']);
  assert.match(problemsOf({ ...valid, peak: { cpu: '1', memory: '0' } })[0]?.message ?? '', /more than zero/);
});

void test('a secret env value is an object with exactly `secret`', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, env: { A: { value: 'x' } } })), ['env.A']);
  assert.deepEqual(paths(problemsOf({ ...valid, env: { A: { secret: 'x', shown: true } } })), ['env.A']);
});

void test('a tenant: zero steady-state, root runAs and unknown fields are refused', () => {
  const tenantProblems = (input: unknown) => {
    const err = assertFerryError(() => parseTenantInput(input), 'FERRY_INVALID_REQUEST');
    return (err.details.problems as FieldProblem[]).map((p) => p.path);
  };
  assert.deepEqual(tenantProblems({ steadyState: { cpu: 1, memory: 0 } }), ['steadyState.memory']);
  assert.deepEqual(tenantProblems({ steadyState: { cpu: 1, memory: 1 }, runAs: { uid: 0, gid: 1000 } }), ['runAs.uid']);
  assert.deepEqual(tenantProblems({ steadyState: { cpu: 1, memory: 1 }, runAs: { uid: 1000 } }), ['runAs.gid']);
  assert.deepEqual(tenantProblems({ steadyState: { cpu: 1, memory: 1 }, runAs: { uid: 1000, gid: 1000, user: 'x' } }), ['runAs']);
  assert.deepEqual(tenantProblems({ steadyState: { cpu: 1, memory: 1 }, data: '/srv/x\0' }), ['data']);
});

void test('a pids peak below 2 is refused: the job shares it with its init', () => {
  assert.deepEqual(paths(problemsOf({ ...valid, peak: { ...valid.peak, pids: 1 } })), ['peak.pids']);
  assert.equal(parseMigrationRequest({ ...valid, peak: { ...valid.peak, pids: 2 } }).peak.pids, 2);
});
