/** A Ferry server for a benchmark: `ferry serve` as a child process in a fresh data folder. */
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
      // Jobs outlive the server by design; a benchmark must not leave any behind.
      // SIGUSR1 (a supervisor's cancel) stops its job's group too; SIGKILL only for what ignores it.
      for (let i = 0; i < 100; i++) {
        const left = processesMatching(join(dataDir, 'jobs'));
        if (left.length === 0) break;
        for (const p of left) {
          try {
            process.kill(p, i < 60 ? 'SIGUSR1' : 'SIGKILL');
          } catch {
            // gone
          }
        }
        await sleep(100);
      }
      if (existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
