/**
 * Supervisors are forked by the spawner (native/ferry-spawner.c), not by Node; it reports their
 * exits and reaps them. Its death kills no job, and the next start() starts a new one.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readProcStat } from '../../../src/substrates/process/proc.ts';
import { isRunning, pidsOf, processKit } from './process-kit.ts';

function parentOf(pid: number): number {
  const stat = readProcStat(pid);
  if (stat === null) throw new Error(`process ${pid} is gone`);
  return stat.parentPid;
}

function commandOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
}

const WAIT_FOR_GO = ['sh', '-c', 'while [ ! -e "$FERRY_SCRATCH/go" ]; do sleep 0.02; done'];

void test('the supervisor is a child of the spawner, its exit is reported, and it is reaped', async () => {
  const kit = await processKit();
  try {
    const { spec, ref } = kit.step(WAIT_FOR_GO);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const { supervisor } = pidsOf(ref);
    const spawner = parentOf(supervisor);
    assert.notEqual(spawner, process.pid);
    assert.match(commandOf(spawner), /ferry-spawner/);
    const watched = kit.substrate.watch(ref, () => undefined);
    writeFileSync(join(spec.scratchRef, 'go'), '');
    assert.equal((await watched).cause, null);
    assert.equal(isRunning(supervisor), false, 'the supervisor was left a zombie');
    await kit.substrate.close();
    assert.equal(isRunning(spawner), false, 'close() left the spawner running');
  } finally {
    await kit.cleanup();
  }
});

void test('kill -9 of the spawner leaves its job running and watched; the next start uses a new spawner', async () => {
  const kit = await processKit();
  try {
    const first = kit.step(WAIT_FOR_GO);
    await kit.substrate.createScratch(first.spec.scratchRef, first.spec);
    await kit.substrate.start(first.spec, first.ref);
    const { supervisor } = pidsOf(first.ref);
    const oldSpawner = parentOf(supervisor);
    const watched = kit.substrate.watch(first.ref, () => undefined);
    watched.catch(() => undefined); // awaited below; a failed assertion before must not leave it unhandled
    process.kill(oldSpawner, 'SIGKILL');

    const second = kit.step(WAIT_FOR_GO);
    await kit.substrate.createScratch(second.spec.scratchRef, second.spec);
    await kit.substrate.start(second.spec, second.ref);
    const newSpawner = parentOf(pidsOf(second.ref).supervisor);
    assert.notEqual(newSpawner, oldSpawner);
    assert.match(commandOf(newSpawner), /ferry-spawner/);
    writeFileSync(join(second.spec.scratchRef, 'go'), '');
    assert.equal((await kit.substrate.watch(second.ref, () => undefined)).cause, null);

    assert.equal(isRunning(supervisor), true, 'the spawner took its supervisor down with it');
    writeFileSync(join(first.spec.scratchRef, 'go'), '');
    const result = await watched;
    assert.equal(result.cause, null, result.detail);
  } finally {
    await kit.cleanup();
  }
});

void test('without a spawner, supervisors are spawned from Node', async () => {
  const kit = await processKit({ spawnerPath: '/nonexistent/ferry-spawner' });
  try {
    const { spec, ref } = kit.step(['true']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const result = await kit.substrate.watch(ref, () => undefined);
    assert.equal(result.cause, null);
  } finally {
    await kit.cleanup();
  }
});
