import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();
const MiB = 1024 * 1024;

void test('a non-zero exit is cause exit-code, with the status in the detail', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'echo before; echo oops >&2; exit 3'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.deepEqual(result, { exitCode: 3, signal: null, cause: 'exit-code', detail: 'exited with status 3' });
  assert.deepEqual(lines.sort(), ['before', 'oops'], 'stdout and stderr both reach onLine');
  assert.deepEqual(env.readLog(spec).split('\n').filter(Boolean).sort(), ['before', 'oops']);
  await env.cleanup(spec, ref);
});

void test('memory above the declared peak is cause limit-exceeded', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), {
    limits: { cpu: 1000, memory: 32 * MiB },
    argv: ['sh', '-c', 'echo filling; x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.equal(result.cause, 'limit-exceeded', result.detail);
  assert.match(result.detail, /32Mi/);
  // Which process the kernel kills decides whether the shell gets to print "Killed": not asserted.
  assert.equal(lines[0], 'filling');
  assert.ok(!lines.includes('survived'), `the job went on after the kill: ${lines.join(' | ')}`);
  await env.cleanup(spec, ref);
});

void test('a step past its timeout is stopped by the substrate: cause deadline', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { timeoutMs: 1500, argv: ['sh', '-c', 'echo waiting; sleep 30; echo woke'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  const t0 = Date.now();
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  const took = Date.now() - t0;
  assert.equal(result.cause, 'deadline', result.detail);
  assert.match(result.detail, /timeout of 1500ms/);
  assert.ok(took >= 1400 && took < 10_000, `stopped after ${took} ms`);
  assert.deepEqual(lines, ['waiting']);
  await env.cleanup(spec, ref);
});

void test('stop() ends a running step with cause cancelled, and is idempotent', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'echo running; sleep 30'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const lines: string[] = [];
  let stopped: Promise<void> | null = null;
  const result = await env.substrate.watch(ref, (line) => {
    lines.push(line);
    if (line === 'running') stopped = env.substrate.stop(ref);
  });
  await stopped;
  assert.equal(result.cause, 'cancelled', result.detail);
  assert.match(result.detail, /stopped on request/);
  await env.substrate.stop(ref); // again, on an ended job: nothing to do
  await env.substrate.stop('ferry-no-such-job'); // and on a job that is gone
  // A re-attach after the stop still reports cancelled (the intent is persisted).
  const again = await (await env.restartedSubstrate()).watch(ref, () => undefined);
  assert.equal(again.cause, 'cancelled', again.detail);
  await env.cleanup(spec, ref);
});

void test('a job whose container is gone is lost, whether it vanished before or during the watch', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'echo up; sleep 30'] });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  assert.equal((await env.substrate.watch(ref, () => undefined)).cause, 'lost', 'never started');

  await env.substrate.start(spec, ref);
  const result = await env.substrate.watch(ref, (line) => {
    if (line === 'up') void env.docker.getContainer(ref).remove({ force: true });
  });
  assert.equal(result.cause, 'lost', result.detail);
  assert.equal(result.exitCode, null);
  assert.match(result.detail, new RegExp(ref));
  await env.cleanup(spec, ref);
});
