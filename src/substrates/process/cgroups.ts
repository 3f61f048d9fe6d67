/**
 * Hard limits for local processes through Linux cgroups: v2 (unified) where the machine has it
 * with the memory controller, v1 (memory, cpu, pids hierarchies) otherwise. Ferry makes one cgroup
 * per step job under `<own cgroup>/ferry` and the supervisor's child joins it before exec.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { settleAll } from './settle-all.ts';
import { readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Resources } from '../../core/types.ts';

export interface JobCgroups {
  /** `cgroup.procs` files the job joins. */
  readonly procs: readonly string[];
  /** The file with `oom_kill N`: memory.events (v2) or memory.oom_control (v1). */
  readonly oomFile: string | null;
  /** Directories to remove when the job is gone. */
  readonly dirs: readonly string[];
}

export interface CgroupDriver {
  readonly version: 'v1' | 'v2';
  readonly detail: string;
  /** The dimensions this hierarchy enforces (memory always; cpu and pids when their controllers are there). */
  readonly dimensions: readonly string[];
  /**
   * The job's cgroups with their limits. Async: a cgroup's mkdir waits for the kernel's cgroup lock,
   * which forks and exits elsewhere hold, and that wait must not stop the event loop. Every part
   * has settled when it rejects, so `dirsFor` can be removed at once.
   */
  create(name: string, limits: Resources): Promise<JobCgroups>;
  /**
   * Every directory `create(name)` may make, whatever the limits: a job's cgroups are derived from
   * its name, so they can be removed even when nothing recorded them (a crash before spec.json).
   */
  dirsFor(name: string): string[];
}

const ROOT = '/sys/fs/cgroup';
/** CFS period used for cpu quotas; a longer one for small quotas, since the kernel's minimum quota is 1 ms. */
const PERIOD_US = 100_000;
const LONG_PERIOD_US = 1_000_000;

/** Find a writable cgroup hierarchy, or explain why there is none. */
export function detectCgroups(): CgroupDriver | { readonly error: string } {
  try {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    if (existsSync(join(ROOT, 'cgroup.controllers'))) {
      const own = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
      return v2Driver(own);
    }
    const memOwn = ownPath(lines, 'memory');
    if (memOwn === null || !existsSync(join(ROOT, 'memory'))) return { error: 'no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory' };
    return v1Driver(memOwn, ownPath(lines, 'cpu'), ownPath(lines, 'pids'));
  } catch (err) {
    return { error: `cannot read cgroups: ${(err as Error).message}` };
  }
}

function ownPath(lines: readonly string[], controller: string): string | null {
  for (const line of lines) {
    const [, controllers = '', path = ''] = line.split(':');
    if (controllers.split(',').includes(controller)) return path;
  }
  return null;
}

function v1Driver(memOwn: string, cpuOwn: string | null, pidsOwn: string | null): CgroupDriver | { error: string } {
  const memBase = join(ROOT, 'memory', memOwn, 'ferry');
  const cpuMount = ['cpu', 'cpu,cpuacct'].map((m) => join(ROOT, m)).find((p) => existsSync(join(p, 'cpu.cfs_quota_us')));
  const cpuBase = cpuMount && cpuOwn !== null ? join(cpuMount, cpuOwn, 'ferry') : null;
  const pidsBase = pidsOwn !== null && existsSync(join(ROOT, 'pids')) ? join(ROOT, 'pids', pidsOwn, 'ferry') : null;
  try {
    mkdirSync(memBase, { recursive: true });
    if (cpuBase) mkdirSync(cpuBase, { recursive: true });
    if (pidsBase) mkdirSync(pidsBase, { recursive: true });
  } catch (err) {
    return { error: `cgroup v1 is not writable here (${(err as Error).message})` };
  }
  // Swap accounting is on for the whole hierarchy or not at all: read once, not per job.
  const memsw = existsSync(join(memBase, 'memory.memsw.limit_in_bytes'));
  return {
    version: 'v1',
    detail: `cgroup v1 under ${memBase}${cpuBase ? ` and ${cpuBase}` : ' (no cpu controller: cpu not limited)'}`,
    dimensions: ['memory', ...(cpuBase ? ['cpu'] : []), ...(pidsBase ? ['pids'] : [])],
    dirsFor(name) {
      return [memBase, cpuBase, pidsBase].filter((b): b is string => b !== null).map((b) => join(b, name));
    },
    async create(name, limits) {
      const mem = join(memBase, name);
      const parts: Array<Promise<string>> = [
        (async () => {
          await mkdir(mem);
          if (limits.memory !== undefined) {
            await writeFile(join(mem, 'memory.limit_in_bytes'), String(limits.memory));
            // No swap: with swap the job could run past its peak instead of being stopped.
            if (memsw) await writeFile(join(mem, 'memory.memsw.limit_in_bytes'), String(limits.memory));
            else await writeFile(join(mem, 'memory.swappiness'), '0');
          }
          return mem;
        })(),
      ];
      if (cpuBase && limits.cpu !== undefined) {
        const cpu = join(cpuBase, name);
        const { period, quota } = cpuQuota(limits.cpu);
        parts.push(
          (async () => {
            await mkdir(cpu);
            await writeFile(join(cpu, 'cpu.cfs_period_us'), String(period));
            await writeFile(join(cpu, 'cpu.cfs_quota_us'), String(quota));
            return cpu;
          })(),
        );
      }
      if (pidsBase && limits.pids !== undefined) {
        const pids = join(pidsBase, name);
        parts.push(
          (async () => {
            await mkdir(pids);
            await writeFile(join(pids, 'pids.max'), String(limits.pids));
            return pids;
          })(),
        );
      }
      // The controllers' hierarchies are independent: made at once, and all settled before an error is thrown.
      const dirs = await settleAll(parts);
      return { procs: dirs.map((d) => join(d, 'cgroup.procs')), oomFile: join(mem, 'memory.oom_control'), dirs };
    },
  };
}

function v2Driver(own: string): CgroupDriver | { error: string } {
  // v2 forbids processes in inner nodes, so Ferry's subtree hangs off the root, which is exempt.
  const base = join(ROOT, 'ferry');
  let enabled: string[];
  try {
    const controllers = readFileSync(join(ROOT, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    if (!controllers.includes('memory')) return { error: 'cgroup v2 without the memory controller' };
    enabled = ['memory', 'cpu', 'pids'].filter((c) => controllers.includes(c));
    const control = enabled.map((c) => `+${c}`).join(' ');
    writeFileSync(join(ROOT, 'cgroup.subtree_control'), control);
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, 'cgroup.subtree_control'), control);
  } catch (err) {
    return { error: `cgroup v2 is not writable here (${(err as Error).message}; the server runs in ${own})` };
  }
  return {
    version: 'v2',
    detail: `cgroup v2 under ${base}`,
    dimensions: enabled,
    dirsFor(name) {
      return [join(base, name)];
    },
    async create(name, limits) {
      const dir = join(base, name);
      await mkdir(dir);
      if (limits.memory !== undefined) {
        await writeFile(join(dir, 'memory.max'), String(limits.memory));
        if (existsSync(join(dir, 'memory.swap.max'))) await writeFile(join(dir, 'memory.swap.max'), '0');
      }
      if (limits.cpu !== undefined && existsSync(join(dir, 'cpu.max'))) {
        const { period, quota } = cpuQuota(limits.cpu);
        await writeFile(join(dir, 'cpu.max'), `${quota} ${period}`);
      }
      if (limits.pids !== undefined && existsSync(join(dir, 'pids.max'))) await writeFile(join(dir, 'pids.max'), String(limits.pids));
      return { procs: [join(dir, 'cgroup.procs')], oomFile: join(dir, 'memory.events'), dirs: [dir] };
    },
  };
}

/** millicores → CFS quota. 1000m is one full period of one core. */
function cpuQuota(millicores: number): { period: number; quota: number } {
  const period = millicores < 10 ? LONG_PERIOD_US : PERIOD_US;
  return { period, quota: Math.max(1000, Math.round((millicores * period) / 1000)) };
}

/** Pause between attempts to remove a cgroup whose processes are still dying, and how many attempts. */
const REMOVE_RETRY_MS = 10;
const REMOVE_TRIES = 100;

/**
 * Remove a job's cgroups, killing anything left in them first. Idempotent. Async: a cgroup whose
 * processes take a while to die is retried for about a second without blocking the event loop.
 */
export async function removeCgroups(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    for (let tries = 0; tries < REMOVE_TRIES; tries++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        for (const pid of await readPids(dir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await sleep(REMOVE_RETRY_MS);
      }
    }
  }
}

async function readPids(dir: string): Promise<number[]> {
  try {
    return (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
