/**
 * A process job is its step folder, the one record a re-attach needs:
 *
 *   <dataDir>/jobs/<migration>/a<attempt>-s<step>/
 *     spec.json   written by Ferry before the supervisor starts (JobFile)
 *     pid         written by the supervisor once the job runs: "<supervisor> <its start> <job> <its start>"
 *     result      written by the supervisor when the job has ended (RawResult)
 *
 * The supervisor (native/ferry-supervise.c) writes `pid` and `result` atomically, so a file that
 * exists is whole. The step name of the wipe step is `wipe`.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FailureCause, Resources } from '../../core/types.ts';
import type { StepSpec } from '../substrate.ts';

const SPEC_FILE = 'spec.json';
export const PID_FILE = 'pid';
const RESULT_FILE = 'result';

/** spec.json: what Ferry knew when it started the step. */
export interface JobFile {
  readonly labels: Record<string, string>;
  readonly migrationId: string;
  readonly issue: string;
  readonly logPath: string;
  readonly logOffset: number;
  readonly cgroupDirs: readonly string[];
  readonly limits: Resources;
  readonly timeoutMs: number | null;
  readonly startedAt: string;
  /** The kernel's boot id when the job started: after a reboot its pids mean other processes. Absent in older records. */
  readonly bootId?: string | null;
}

/** pid: the supervisor and the job (a process group leader), each with its start time (see proc.ts). */
export interface PidFile {
  readonly supervisor: number;
  readonly supervisorStart: string;
  readonly job: number;
  readonly jobStart: string;
}

/** result: how the job ended, as the supervisor saw it. */
export interface RawResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly cause: FailureCause | null;
}

/** The step folder of a step: `a<attempt>-s<step>` under its migration's folder, `-swipe` for the wipe step. */
export function stepFolder(jobsRoot: string, spec: StepSpec): string {
  const step = spec.stepIndex < 0 ? 'wipe' : String(spec.stepIndex);
  return join(jobsRoot, spec.migrationId, `a${spec.attempt}-s${step}`);
}

/** A job's cgroup name, derived from its ref (`<migration>-a<attempt>-s<step>`), so it can be found without any record. */
export function cgroupName(ref: string): string {
  return `${basename(dirname(ref))}-${basename(ref)}`;
}

export function specPath(ref: string): string {
  return join(ref, SPEC_FILE);
}

export function pidPath(ref: string): string {
  return join(ref, PID_FILE);
}

export function resultPath(ref: string): string {
  return join(ref, RESULT_FILE);
}

export async function writeJobFile(ref: string, job: JobFile): Promise<void> {
  await writeFile(specPath(ref), JSON.stringify(job));
}

/** spec.json, or null when it is missing or unreadable. */
export async function readJobFile(ref: string): Promise<JobFile | null> {
  try {
    return JSON.parse(await readFile(specPath(ref), 'utf8')) as JobFile;
  } catch {
    return null;
  }
}

export async function readPidFile(ref: string): Promise<PidFile | null> {
  try {
    const [supervisor, supervisorStart, job, jobStart] = (await readFile(pidPath(ref), 'utf8')).trim().split(' ');
    return { supervisor: Number(supervisor), supervisorStart: supervisorStart ?? '', job: Number(job), jobStart: jobStart ?? '' };
  } catch {
    return null;
  }
}

export async function readResult(ref: string): Promise<RawResult | null> {
  try {
    return JSON.parse(await readFile(resultPath(ref), 'utf8')) as RawResult;
  } catch {
    return null;
  }
}

/** False only when the job recorded a boot id and the machine has booted since. */
export function sameBoot(job: JobFile, bootId: string | null): boolean {
  return !job.bootId || bootId === null || job.bootId === bootId;
}

/** Every step folder under `jobsRoot` with its spec.json; a folder without a readable one is skipped. */
export async function listStepFolders(jobsRoot: string): Promise<{ ref: string; job: JobFile }[]> {
  const out: { ref: string; job: JobFile }[] = [];
  for (const migration of await readdir(jobsRoot).catch(() => [] as string[])) {
    for (const step of await readdir(join(jobsRoot, migration)).catch(() => [] as string[])) {
      const ref = join(jobsRoot, migration, step);
      const job = await readJobFile(ref);
      if (job !== null) out.push({ ref, job });
    }
  }
  return out;
}
