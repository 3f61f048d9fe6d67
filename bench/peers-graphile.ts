/**
 * graphile-worker in the peers case (bench/peers.ts): a fresh database, the worker as a child
 * process (bench/peers-graphile-worker.ts: concurrency 32, its own schema), and the producers in
 * this process adding jobs with `addJob` through WorkerUtils over a pool of one connection per
 * producer. The start latency is the job's own stamp − the `addJob` call; a phase ends when the
 * jobs table is empty (graphile-worker deletes a job when it succeeds), polled every 10 ms.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeWorkerUtils, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { backendsCpu, backendsCpuBetween, createDatabase, paced, procCpu, requireStamp } from './peers-support.ts';
import { percentile, pool, sleep, wallMs } from './support.ts';

const WORKER = new URL('./peers-graphile-worker.ts', import.meta.url).pathname;
const SETTLE_MS = 180_000;

export interface GraphilePhase {
  readonly jobs: number;
  readonly wholeMs: number;
  readonly ratePerS: number;
  readonly latencies: number[];
  /** The worker process's own CPU, ms per job (it also forks each job's process). */
  readonly workerCpuMs: number;
  /** What the worker reaped: the jobs' `sh` and `date`. */
  readonly jobTreeCpuMs: number;
  readonly pgCpuMs: number;
  /** The benchmark's own process (the producers' addJob calls and the watching), on the same cores. */
  readonly producerCpuMs: number;
  readonly note: string;
}

export interface GraphileRun {
  readonly saturated: GraphilePhase;
  readonly paced: GraphilePhase & { achievedPerS: number };
}

export async function graphileRun(o: { jobs: number; producers: number; pacedJobs: number; pacedPerS: number; run: number }): Promise<GraphileRun> {
  const db = await createDatabase('ferry_peers_gw');
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-peers-gw-'));
  let worker: ChildProcess | null = null;
  let output = '';
  const producers = new pg.Pool({ connectionString: db.url, max: o.producers });
  // As graphile-worker asks of a pool it is given: an idle or lent connection's error is not fatal here.
  producers.on('error', () => undefined);
  producers.on('connect', (client) => client.on('error', () => undefined));
  let utils: WorkerUtils | null = null;
  const watcher = new pg.Client({ connectionString: db.url });
  try {
    worker = spawn(process.execPath, ['--import', 'tsx', WORKER, db.url], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    const child = worker;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`graphile-worker not ready after 30 s: ${output}`)), 30_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`graphile-worker exited ${code}: ${output}`)));
    });
    const pid = child.pid as number;
    utils = await makeWorkerUtils({ pgPool: producers });
    const u = utils;
    await watcher.connect();
    const open = async () => Number((await watcher.query<{ n: string }>('SELECT count(*) AS n FROM graphile_worker._private_jobs')).rows[0]?.n ?? 0);
    const settle = async (what: string) => {
      const deadline = Date.now() + SETTLE_MS;
      for (;;) {
        if ((await open()) === 0) return wallMs();
        if (Date.now() > deadline) throw new Error(`graphile-worker: ${what} jobs still open after ${SETTLE_MS / 1000} s: ${output}`);
        await sleep(10);
      }
    };
    const cpu = async () => {
      const backends = await backendsCpu(db.name);
      const own = process.cpuUsage();
      return { proc: procCpu(pid) ?? { own: 0, reaped: 0 }, backends, producer: (own.user + own.system) / 1e6 };
    };
    const stampOf = (phase: string, i: number) => join(dir, `${phase}-${i}`);
    const add = (phase: string, i: number) => u.addJob('stamp', { file: stampOf(phase, i) }).then(() => undefined);

    // Warm-up, not measured.
    await pool(
      Array.from({ length: 8 }, (_, i) => i),
      8,
      (i) => add('warm', i),
    );
    await settle('warm-up');

    const phase = (
      name: string,
      jobs: number,
      wholeMs: number,
      sent: number[],
      before: Awaited<ReturnType<typeof cpu>>,
      after: typeof before,
      note: string,
    ) => {
      const perJob = (s: number) => (s * 1000) / jobs;
      return {
        jobs,
        wholeMs,
        ratePerS: (jobs * 1000) / wholeMs,
        latencies: sent.map((at, i) => requireStamp(stampOf(name, i), `graphile-worker job ${name} ${i}`) - at),
        workerCpuMs: perJob(after.proc.own - before.proc.own),
        jobTreeCpuMs: perJob(after.proc.reaped - before.proc.reaped),
        pgCpuMs: perJob(backendsCpuBetween(before.backends, after.backends)),
        producerCpuMs: perJob(after.producer - before.producer),
        note,
      };
    };

    const satSent: number[] = new Array(o.jobs);
    const before = await cpu();
    const t0 = wallMs();
    await pool(
      Array.from({ length: o.jobs }, (_, i) => i),
      o.producers,
      async (i) => {
        satSent[i] = wallMs();
        await add('sat', i);
      },
    );
    const addedMs = wallMs() - t0;
    const ended = await settle('saturated');
    const saturated = phase('sat', o.jobs, ended - t0, satSent, before, await cpu(), `adding took ${Math.round(addedMs)} ms`);
    process.stderr.write(`peers: graphile-worker run ${o.run} saturated: ${saturated.ratePerS.toFixed(1)} jobs/s\n`);

    await sleep(500);
    const pBefore = await cpu();
    const p0 = wallMs();
    const schedule = await paced(o.pacedJobs, o.pacedPerS, (i) => add('paced', i));
    const pEnded = await settle('paced');
    const pacedPhase = phase('paced', o.pacedJobs, pEnded - p0, schedule.sent, pBefore, await cpu(), `jobs added at ${schedule.achievedPerS.toFixed(1)}/s`);
    process.stderr.write(
      `peers: graphile-worker run ${o.run} paced: p50 ${percentile(pacedPhase.latencies, 50).toFixed(1)} ms, p99 ${percentile(pacedPhase.latencies, 99).toFixed(1)} ms\n`,
    );
    return { saturated, paced: { ...pacedPhase, achievedPerS: schedule.achievedPerS } };
  } finally {
    await watcher.end().catch(() => undefined);
    await Promise.resolve(utils?.release()).catch(() => undefined);
    await producers.end().catch(() => undefined);
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const w = worker;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      w.kill('SIGTERM');
      const timer = setTimeout(() => w.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
