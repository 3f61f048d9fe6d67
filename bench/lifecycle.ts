/**
 * Lifecycle cost: 500 one-step migrations across 500 tenants, filed and approved through the HTTP
 * API, until all succeeded. Figures: migrations per second end to end, approval-to-process-start
 * p50/p99, and the whole run against spawning the same 500 processes straight from Node at the
 * same concurrency (measured in the same run, before Ferry's).
 *
 * The step is `true` with a timestamp: `sh -c 'date +%s%N > "$FERRY_SCRATCH/started"'`, so the
 * start is seen from the job's side with nanosecond resolution (file mtimes are too coarse). The
 * baseline runs the very same command.
 */
import { listAllMigrations } from '../test/support/harness.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchServer } from './server.ts';
import { percentile, pool, procSample, wallMs, type Report } from './support.ts';

const COUNT = Number(process.env.FERRY_BENCH_LIFECYCLE_COUNT ?? 500);
/** API clients in flight, and processes in flight for the baseline. */
const CONCURRENCY = 32;
const STAMP = 'date +%s%N > "$FERRY_SCRATCH/started"';
const ISSUE = 'github:acme/bench#1';

export async function lifecycleBench(report: Report): Promise<void> {
  const baselineMs = await baseline();
  const s = await startBenchServer();
  try {
    // cpu 1 / memory 64Mi: a tiny cpu quota would throttle sh and date and measure the quota, not Ferry.
    const tenants = await s.tenants('life', COUNT, { cpu: '500m', memory: '32Mi' });
    const cpuBefore = procSample(s.pid)?.cpu ?? 0;
    const approvedAt = new Map<string, { sent: number; answered: number }>();
    const t0 = wallMs();
    await pool(tenants, CONCURRENCY, async (tenant) => {
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: ISSUE,
        tenant,
        peak: { cpu: '1', memory: '64Mi' },
        snapshot: 'never',
        steps: [{ name: 'stamp', run: ['sh', '-c', STAMP] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const sent = wallMs();
      const approved = await s.server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
      const answered = wallMs();
      if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
      approvedAt.set(filed.body.id as string, { sent, answered });
    });
    const filedMs = wallMs() - t0;
    let all: Array<{ id: string; state: string; updatedAt: string }> = [];
    for (;;) {
      const open = await listAllMigrations(s.server.api, 'state=filed,approved,queued,running');
      if (open.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    all = await listAllMigrations(s.server.api, `issue=${encodeURIComponent(ISSUE)}`);
    const cpuUsed = (procSample(s.pid)?.cpu ?? 0) - cpuBefore;
    const failed = all.filter((m) => m.state !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} migrations did not succeed, e.g. ${JSON.stringify(failed[0])}`);
    const tEnd = Math.max(...all.map((m) => Date.parse(m.updatedAt)));
    const wholeMs = tEnd - t0;

    const fromAnswer: number[] = [];
    const fromSent: number[] = [];
    for (const [id, at] of approvedAt) {
      const ns = BigInt(readFileSync(join(s.dataDir, 'scratch', id, 'started'), 'utf8').trim());
      const startedMs = Number(ns / 1000n) / 1000;
      fromAnswer.push(startedMs - at.answered);
      fromSent.push(startedMs - at.sent);
    }
    const c = 'lifecycle';
    // Issue 11's targets. Approval to start under this saturating load is queueing; its target is
    // at a paced 50 approvals/s (`npm run bench -- peers`).
    report.target(c, `migrations per second end to end (${COUNT})`, (COUNT / wholeMs) * 1000, 'migrations/s', '>=', 300);
    report.context(c, 'approval-to-process-start p50 (from approve response)', percentile(fromAnswer, 50), 'ms');
    report.context(c, 'approval-to-process-start p99 (from approve response)', percentile(fromAnswer, 99), 'ms');
    report.context(c, 'approval-to-process-start p50 (from approve request sent)', percentile(fromSent, 50), 'ms');
    report.context(c, 'approval-to-process-start p99 (from approve request sent)', percentile(fromSent, 99), 'ms');
    report.context(c, 'whole run', wholeMs, 'ms', `filing and approving took ${Math.round(filedMs)} ms`);
    report.context(c, `baseline: ${COUNT} processes spawned from Node, ${CONCURRENCY} in flight`, baselineMs, 'ms');
    report.context(c, 'whole run / baseline', wholeMs / baselineMs, 'x');
    report.target(c, 'server CPU time per migration', (cpuUsed * 1000) / COUNT, 'ms', '<=', 3);
  } finally {
    await s.close();
  }
}

/** The same processes, straight from Node: spawn, await exit, `concurrency` in flight (also the cluster case's baseline). */
export async function baseline(count = COUNT, concurrency = CONCURRENCY): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-baseline-'));
  try {
    const t0 = wallMs();
    await pool(
      Array.from({ length: count }, (_, i) => i),
      concurrency,
      (i) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn('sh', ['-c', STAMP.replace('"$FERRY_SCRATCH/started"', `"${dir}/s${i}"`)], { stdio: 'ignore' });
          child.once('error', reject);
          child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`baseline process exited ${code}`))));
        }),
    );
    return wallMs() - t0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
