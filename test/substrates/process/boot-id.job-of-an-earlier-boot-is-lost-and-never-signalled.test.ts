/**
 * After a reboot the pids in a job's files name other processes, and a start time can match by
 * chance. A job recorded under another boot id is lost, and nothing of it is ever signalled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { readProcStat } from '../../../src/substrates/process/proc.ts';
import { isRunning, processKit } from './process-kit.ts';

function startTime(pid: number): string {
  const stat = readProcStat(pid);
  if (stat === null) throw new Error(`process ${pid} is gone`);
  return stat.startTime;
}

void test('watch, stop and remove treat a job of another boot as lost and leave the pid it names alone', { timeout: 30_000 }, async () => {
  const kit = await processKit();
  // A process of this boot that happens to hold the recorded pid and start time.
  const bystander = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  try {
    const pid = bystander.pid as number;
    const { ref } = kit.step(['true']);
    const logPath = join(kit.dataDir, 'logs', 'earlier-boot.log');
    mkdirSync(ref, { recursive: true });
    mkdirSync(dirname(logPath), { recursive: true });
    writeFileSync(logPath, '');
    writeFileSync(
      join(ref, 'spec.json'),
      JSON.stringify({
        labels: {},
        migrationId: 'm-earlier',
        issue: 'github:acme/platform#1',
        logPath,
        logOffset: 0,
        cgroupDirs: [],
        limits: { cpu: 1000, memory: 1 << 28 },
        timeoutMs: null,
        startedAt: new Date().toISOString(),
        bootId: 'a-boot-before-this-one',
      }),
    );
    writeFileSync(join(ref, 'pid'), `${pid} ${startTime(pid)} ${pid} ${startTime(pid)}\n`);

    const result = await kit.substrate.watch(ref, () => undefined);
    assert.equal(result.cause, 'lost');
    assert.match(result.detail, /restarted/);
    await kit.substrate.stop(ref);
    await kit.substrate.remove('job', ref);
    assert.equal(isRunning(pid), true, 'a process of this boot was signalled');
  } finally {
    bystander.kill('SIGKILL');
    await kit.cleanup();
  }
});
