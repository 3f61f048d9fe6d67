/**
 * Scale: 1,000 migrations of `sleep` running at once across 1,000 tenants (tiny declared peaks,
 * a capacity large enough for all). Figures: time from the first filing until every job runs
 * (its supervisor wrote the pid file, i.e. the job was forked), the server's peak RSS, and its
 * CPU share over a 10 s window while all 1,000 run. The server is a child process, read from /proc.
 */
import { listAllMigrations } from '../test/support/harness.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startBenchServer } from './server.ts';
import { pool, procSample, sleep, wallMs, type Report } from './support.ts';

const COUNT = Number(process.env.FERRY_BENCH_SCALE_COUNT ?? 1000);
const CONCURRENCY = 32;
const WINDOW_MS = 10_000;
const ISSUE = 'github:acme/bench#2';

export async function scaleBench(report: Report): Promise<void> {
  const s = await startBenchServer();
  let peakRss = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, procSample(s.pid)?.rss ?? 0);
      await sleep(100);
    }
  })();
  try {
    const tenants = await s.tenants('scale', COUNT, { cpu: '1m', memory: '16Mi' });
    const ids: string[] = [];
    const t0 = wallMs();
    await pool(tenants, CONCURRENCY, async (tenant) => {
      // Long enough that the first are still running when the last start, however slow the starts.
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: ISSUE,
        tenant,
        peak: { cpu: '1m', memory: '16Mi' },
        snapshot: 'never',
        steps: [{ name: 'sleep', run: ['sleep', '600'] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const approved = await s.server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
      if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
      ids.push(filed.body.id as string);
    });
    const pending = new Set(ids);
    const deadline = Date.now() + 300_000;
    while (pending.size > 0) {
      for (const id of pending) if (existsSync(join(s.dataDir, 'jobs', id, 'a1-s0', 'pid'))) pending.delete(id);
      if (pending.size === 0) break;
      if (Date.now() > deadline) throw new Error(`${pending.size} jobs never started`);
      await sleep(50);
    }
    const allRunningMs = wallMs() - t0;
    const running = await listAllMigrations(s.server.api, 'state=running');
    const before = procSample(s.pid);
    const w0 = wallMs();
    await sleep(WINDOW_MS);
    const after = procSample(s.pid);
    const share = before && after ? ((after.cpu - before.cpu) / ((wallMs() - w0) / 1000)) * 100 : Number.NaN;
    const c = 'scale';
    report.target(c, `time until all ${COUNT} jobs run`, allRunningMs / 1000, 's', '<=', 3);
    report.context(c, 'migrations in state running once all jobs ran', running.length, 'migrations');
    report.target(c, 'server CPU while they run (10 s window)', share, '% of one core', '<=', 5);
    sampling = false;
    await sampler;
    report.target(c, 'server peak RSS', peakRss / 2 ** 20, 'MiB', '<=', 250);
    // Not timed: closing the issue stops every job and removes its artifacts.
    const closed = await s.server.api('POST', `/v1/issues/${encodeURIComponent(ISSUE)}/close`, {});
    if (closed.status !== 200) throw new Error(`close: ${closed.status} ${JSON.stringify(closed.body).slice(0, 500)}`);
  } finally {
    sampling = false;
    await sampler;
    await s.close();
  }
}
