/**
 * A service manager stopping Ferry signals every process of its unit (systemd's
 * KillMode=control-group, docker stop): SIGTERM, SIGINT and SIGHUP must not cancel a job; only
 * the substrate's stop() (SIGUSR1) does.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../../support/harness.ts';
import { pidsOf, processKit, sigBit, signalsTaken } from './process-kit.ts';

const WAIT_FOR_GO = [
  'sh',
  '-c',
  'cat /proc/self/status > "$FERRY_SCRATCH/status"; : > "$FERRY_SCRATCH/ready"; while [ ! -e "$FERRY_SCRATCH/go" ]; do sleep 0.02; done; echo done',
];
const STOP_SIGNALS = sigBit(1) | sigBit(2) | sigBit(15);

void test('SIGTERM, SIGINT and SIGHUP to the supervisor leave the job running to its own end', async () => {
  const kit = await processKit();
  try {
    const { spec, ref } = kit.step(WAIT_FOR_GO);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const watched = kit.substrate.watch(ref, () => undefined);
    const { supervisor } = pidsOf(ref);
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.kill(supervisor, sig);
    // Taken (a cancel, before the fix), or held blocked for good: either way nothing else is coming.
    await signalsTaken(supervisor, STOP_SIGNALS);
    // The job itself must still be stoppable with SIGTERM: dispositions and masks survive exec. Its
    // first command records the masks it was started with. Read from outside, the shell's own would
    // mislead: dash blocks every signal while it waits for a child.
    await waitFor('the job to run', () => existsSync(join(spec.scratchRef, 'ready')));
    const status = readFileSync(join(spec.scratchRef, 'status'), 'utf8');
    const mask = (field: string) => BigInt(`0x${new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? 'x'}`);
    assert.equal(
      (mask('SigIgn') | mask('SigBlk')) & STOP_SIGNALS,
      0n,
      `the job inherited an ignored or blocked stop signal: ${status
        .split('\n')
        .filter((l) => l.startsWith('Sig') || l.startsWith('Pid') || l.startsWith('PPid') || l.startsWith('Name'))
        .join('; ')}`,
    );
    writeFileSync(join(spec.scratchRef, 'go'), '');
    const result = await watched;
    assert.equal(result.cause, null, result.detail);
    assert.equal(result.exitCode, 0);
  } finally {
    await kit.cleanup();
  }
});

void test('stop() cancels the job (SIGUSR1 to its supervisor), which ends on its SIGTERM', async () => {
  const kit = await processKit();
  try {
    const { spec, ref } = kit.step(WAIT_FOR_GO);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const watched = kit.substrate.watch(ref, () => undefined);
    await kit.substrate.stop(ref);
    const result = await watched;
    assert.equal(result.cause, 'cancelled', result.detail);
    // SIGTERM ended it, not the SIGKILL that follows 10 s later when the job ignores SIGTERM.
    assert.equal(result.signal, 'SIGTERM', result.detail);
  } finally {
    await kit.cleanup();
  }
});
