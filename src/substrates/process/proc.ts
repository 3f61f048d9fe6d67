/**
 * What the process substrate reads of `/proc` and how it signals: a pid alone is never trusted,
 * because the kernel reuses pids. A process is "the same" only when its start time (field 22 of
 * /proc/PID/stat, in clock ticks since boot) matches the one recorded, and a recorded pair means
 * nothing after a reboot, hence the boot id (docs/decisions.md, "Running jobs").
 */
import { readFileSync } from 'node:fs';

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

/** The fields of /proc/PID/stat that Ferry reads. */
export interface ProcStat {
  /** Field 3: `R`, `S`, `D`, `Z` (zombie), ... */
  readonly state: string;
  /** Field 4. */
  readonly parentPid: number;
  /** Field 22, kept as the kernel's text: compared, never computed with. */
  readonly startTime: string;
}

/**
 * /proc/PID/stat of a process, or null when there is none. The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses: the fields are counted from the last `)`.
 */
export function readProcStat(pid: number): ProcStat | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // fields[0] is field 3 (state), fields[1] field 4 (parent), fields[19] field 22 (start time).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', parentPid: Number(fields[1]), startTime: fields[19] ?? '' };
}

/** Alive and the same process (start time matches), so a reused pid is never mistaken for it. */
export function isAlive(pid: number, startTime: string): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.startTime === startTime && stat.state !== 'Z';
}

/** SIGKILL to the process group led by `pid`, if that leader is still the recorded process. */
export function killGroup(pid: number, startTime: string): void {
  if (!isAlive(pid, startTime)) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

/** process.kill that tolerates the process ending between the liveness check and the signal (ESRCH). */
export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** The kernel's boot id, or null where it cannot be read. */
export function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID_FILE, 'utf8').trim() || null;
  } catch {
    return null;
  }
}
