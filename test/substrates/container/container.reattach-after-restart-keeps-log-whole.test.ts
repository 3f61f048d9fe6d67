import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { usePodman, watchLines } from './support/podman-fixture.ts';

const podman = usePodman();
const expected = Array.from({ length: 8 }, (_, i) => `line ${i + 1}`);

void test('a restarted runner re-attaches: every line once to onLine and once in the log, then the result', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), { argv: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do echo "line $i"; sleep 0.25; done'] });
  await env.prepare(spec);
  // The attempt log already holds the runner's earlier lines; the step's output goes after them.
  mkdirSync(dirname(spec.logPath), { recursive: true });
  appendFileSync(spec.logPath, 'earlier step\n');
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);

  // The first runner sees some lines, then stops (close() ends its watch; the job keeps running).
  const firstLines: string[] = [];
  const firstWatch = env.substrate.watch(ref, (line) => {
    firstLines.push(line);
    if (firstLines.length === 3) void env.substrate.close();
  });
  await assert.rejects(firstWatch, /substrate was closed; the job keeps running/);
  assert.deepEqual(firstLines.slice(0, 3), expected.slice(0, 3));
  assert.equal((await env.docker.getContainer(ref).inspect()).State.Running, true, 'closing a substrate never stops jobs');

  const restarted = await env.restartedSubstrate();
  const { result, lines } = await watchLines(restarted, ref);
  assert.equal(result.cause, null, result.detail);
  assert.deepEqual(lines, expected, 'onLine gets the step from its first line');
  assert.equal(env.readLog(spec), ['earlier step', ...expected].join('\n') + '\n', 'no line twice, none lost');

  // Watching again after the end changes nothing in the file.
  const third = await watchLines(restarted, ref);
  assert.deepEqual(third.lines, expected);
  assert.equal(env.readLog(spec), ['earlier step', ...expected].join('\n') + '\n');
  await restarted.remove('job', ref);
  await restarted.remove('scratch', spec.scratchRef);
  await restarted.remove('log', spec.logPath);
});

void test('a re-attached watch still enforces the step timeout, counted from the container start', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const first = await env.restartedSubstrate();
  const spec = env.spec(await env.tenant(), { timeoutMs: 2000, argv: ['sh', '-c', 'echo long; sleep 30'] });
  await env.prepare(spec);
  const ref = first.jobRef(spec);
  const t0 = Date.now();
  await first.start(spec, ref);
  await first.close(); // the runner stops before watching at all

  const restarted = await env.restartedSubstrate();
  const { result, lines } = await watchLines(restarted, ref);
  const took = Date.now() - t0;
  assert.equal(result.cause, 'deadline', result.detail);
  assert.ok(took < 8000, `deadline enforced after ${took} ms`);
  assert.deepEqual(lines, ['long']);
  await env.cleanup(spec, ref);
});
