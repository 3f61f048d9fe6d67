/** A real ProcessSubstrate in a fresh data folder, and what the process substrate's tests share. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readProcStat } from '../../../src/substrates/process/proc.ts';
import { ProcessSubstrate, type ProcessSubstrateOptions } from '../../../src/substrates/process/process-substrate.ts';
import type { StepSpec } from '../../../src/substrates/substrate.ts';
import { removeDir, tempDir, waitFor } from '../../support/harness.ts';

export interface Kit {
  readonly substrate: ProcessSubstrate;
  readonly dataDir: string;
  /** A step spec and its ref; each call a new migration id. */
  step(argv: string[], extra?: Partial<StepSpec>): { spec: StepSpec; ref: string };
  /** Stop and remove every job this kit started, close the substrate, remove the data folder. */
  cleanup(): Promise<void>;
}

let counter = 0;

/** The identity the kit's tenant runs as: neither root nor the test's own user. */
export const KIT_RUN_AS = { uid: 200100, gid: 200100 } as const;

export async function processKit(options: Partial<ProcessSubstrateOptions> = {}): Promise<Kit> {
  const dataDir = tempDir('ferry-process-');
  const substrate = new ProcessSubstrate({ dataDir, ...options });
  await substrate.init();
  const refs: string[] = [];
  return {
    substrate,
    dataDir,
    step(argv, extra = {}) {
      const migrationId = `m-test-${process.pid}-${++counter}`;
      const scratchRef = substrate.scratchRef(migrationId);
      const spec: StepSpec = {
        migrationId,
        issue: 'github:acme/platform#1',
        tenant: { id: 'shop', steadyState: { cpu: 1000, memory: 256 * 1024 * 1024 }, data: '', runAs: KIT_RUN_AS, allowRoot: false },
        attempt: 1,
        stepIndex: 0,
        stepName: 'test',
        argv,
        env: {},
        limits: { cpu: 1000, memory: 256 * 1024 * 1024 },
        scratchRef,
        // Where service.ts puts the runner's attempt logs, the root the substrate removes logs under.
        logPath: join(dataDir, 'logs', migrationId, 'attempt-1.log'),
        ...extra,
      };
      const ref = substrate.jobRef(spec);
      refs.push(ref);
      return { spec, ref };
    },
    async cleanup() {
      // remove() kills what still runs (job group and supervisor) and the job's cgroups.
      for (const ref of refs) await substrate.remove('job', ref);
      await substrate.close();
      removeDir(dataDir);
    },
  };
}

/**
 * The pids a started job recorded: supervisor and job. When the job is confined, the recorded "job"
 * is the init of its PID namespace (SIGKILL to it ends all of the job); `jobProcess` finds the job.
 */
export function pidsOf(ref: string): { supervisor: number; job: number } {
  const [supervisor, , job] = readFileSync(join(ref, 'pid'), 'utf8').trim().split(' ');
  return { supervisor: Number(supervisor), job: Number(job) };
}

/** The job's own process: the recorded pid when it runs unconfined, else the child of its namespace's init. */
export function jobProcess(ref: string): number {
  const { job } = pidsOf(ref);
  if (!readFileSync(`/proc/${job}/cmdline`, 'utf8').startsWith('ferry-init')) return job;
  const child = childrenOf(job)[0];
  if (child === undefined) throw new Error(`the init ${job} of ${ref} has no child`);
  return child;
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name) && readProcStat(Number(name))?.parentPid === pid) out.push(Number(name));
  }
  return out;
}

/** Live processes (not zombies) whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker) && isRunning(Number(name))) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function isRunning(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** A mask of /proc/PID/status (`SigPnd`, `ShdPnd`, `SigBlk`, `SigIgn`, ...). */
export function signalMask(pid: number, field: string): bigint {
  const match = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return BigInt(`0x${match?.[1] ?? '0'}`);
}

/** Bit of signal `n` in a /proc mask. */
export const sigBit = (n: number): bigint => 1n << BigInt(n - 1);

/** Waits until `pid` holds no pending signal outside `allowed` (it took, or discarded, what it was sent). */
export async function signalsTaken(pid: number, allowed = 0n): Promise<void> {
  await waitFor(`process ${pid} to take its signals`, () => ((signalMask(pid, 'SigPnd') | signalMask(pid, 'ShdPnd')) & ~allowed) === 0n);
}
