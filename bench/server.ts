/** A Ferry server for a benchmark: `ferry serve` as a child process in a fresh data folder. */
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../test/support/harness.ts';
import { spawnServer, type ServerProcess } from '../test/support/server-process.ts';
import { pool, processesMatching, sleep } from './support.ts';

export interface BenchServer {
  readonly dataDir: string;
  readonly server: ServerProcess;
  readonly pid: number;
  /** Register `count` tenants `<prefix>-<n>` with the given steady-state (not timed). */
  tenants(prefix: string, count: number, steadyState: Record<string, string>): Promise<string[]>;
  /** Stop the server (SIGTERM), kill what is left of its jobs, remove the data folder. */
  close(): Promise<void>;
}

/** Capacity large enough that the scheduler's budget never limits a benchmark. */
export const BIG_CAPACITY = ['--capacity-cpu', '4000', '--capacity-memory', '4Ti'];

export async function startBenchServer(
  args: string[] = BIG_CAPACITY,
  env: Record<string, string> = {},
  dataDir = tempDir('ferry-bench-'),
): Promise<BenchServer> {
  // FERRY_BENCH_CPU_PROF=<folder>: the server writes a V8 CPU profile there when it stops.
  const profile = process.env.FERRY_BENCH_CPU_PROF;
  const server = await spawnServer(dataDir, args, env, profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []);
  const pid = server.child.pid;
  if (pid === undefined) throw new Error('ferry serve has no pid');
  return {
    dataDir,
    server,
    pid,
    async tenants(prefix, count, steadyState) {
      const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
      await pool(ids, 16, async (id) => {
        const r = await server.api('PUT', `/v1/tenants/${id}`, { steadyState });
        if (r.status !== 201 && r.status !== 200) throw new Error(`PUT tenant ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      });
      return ids;
    },
    async close() {
      await server.kill('SIGTERM');
      await stopLeftoverJobs(dataDir);
      if (existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `ferry serve` processes started by a case (cluster, peers): SIGTERM every node (SIGKILL after 15 s), stop what is left of their jobs, remove their data folders. */
export async function stopNodes(nodes: readonly { readonly child: ChildProcess; readonly dataDir: string }[]): Promise<void> {
  await Promise.all(
    nodes.map(async (x) => {
      if (x.child.exitCode !== null || x.child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => x.child.once('exit', () => resolve()));
      x.child.kill('SIGTERM');
      const timer = setTimeout(() => x.child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }),
  );
  for (const x of nodes) {
    await stopLeftoverJobs(x.dataDir);
    rmSync(x.dataDir, { recursive: true, force: true });
  }
}

/**
 * Jobs outlive their server by design; a benchmark must not leave any behind. SIGUSR1 (a
 * supervisor's cancel) stops its job's group too; SIGKILL only for what ignores it.
 */
async function stopLeftoverJobs(dataDir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const left = processesMatching(join(dataDir, 'jobs'));
    if (left.length === 0) return;
    for (const p of left) {
      try {
        process.kill(p, i < 60 ? 'SIGUSR1' : 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(100);
  }
}
