import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stepResultOf } from '../../../src/substrates/container/container-result.ts';

const MiB = 1024 * 1024;
const base = { exitCode: 0, oomKilled: false, memoryLimit: 64 * MiB, timeoutMs: null };
const at = '2025-01-02T03:04:05.000Z';

void test('exit 0 succeeds; other statuses are exit-code', () => {
  assert.deepEqual(stepResultOf(base, null), { exitCode: 0, signal: null, cause: null, detail: 'exited with status 0' });
  assert.deepEqual(stepResultOf({ ...base, exitCode: 2 }, null), { exitCode: 2, signal: null, cause: 'exit-code', detail: 'exited with status 2' });
  assert.equal(stepResultOf({ ...base, exitCode: 143 }, null).signal, 'SIGTERM');
});

void test("the engine's OOM flag wins over everything: limit-exceeded with the declared peak", () => {
  const r = stepResultOf({ ...base, exitCode: 137, oomKilled: true }, { cause: 'cancelled', at });
  assert.equal(r.cause, 'limit-exceeded');
  assert.equal(r.detail, 'killed: memory above the declared peak 64Mi');
});

void test("Ferry's stop intent decides between deadline and cancelled, whatever the status", () => {
  assert.equal(
    stepResultOf({ ...base, exitCode: 137, timeoutMs: 90_000 }, { cause: 'deadline', at }).detail,
    'stopped: ran past its timeout of 90s (exit status 137)',
  );
  assert.equal(stepResultOf({ ...base, exitCode: 0 }, { cause: 'cancelled', at }).cause, 'cancelled');
});

void test('an unexplained SIGKILL of a memory-limited container is taken as over the limit (Podman on cgroup v1 reports no OOM)', () => {
  const r = stepResultOf({ ...base, exitCode: 137 }, null);
  assert.equal(r.cause, 'limit-exceeded');
  assert.match(r.detail, /SIGKILL while limited to 64Mi/);
  assert.equal(stepResultOf({ ...base, exitCode: 137, memoryLimit: null }, null).cause, 'exit-code');
});
