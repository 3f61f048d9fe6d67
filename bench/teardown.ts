/**
 * Teardown: closing an issue that owns 100 finished migrations (each with a job, scratch, log and
 * snapshot). Figures: time from the close request until its answer, which comes once every
 * artifact is removed, and a count of what is left afterwards (files, processes, cgroups, and
 * artifact rows not marked removed), which must be 0.
 */
import { listAllMigrations } from '../test/support/harness.ts';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startBenchServer } from './server.ts';
import { pool, processesMatching, sleep, wallMs, type Report } from './support.ts';

const COUNT = 100;
const ISSUE = 'github:acme/bench#4';

export async function teardownBench(report: Report): Promise<void> {
  const s = await startBenchServer();
  try {
    const tenants = await s.tenants('down', COUNT, { cpu: '500m', memory: '32Mi' });
    const ids = await pool(tenants, 16, async (tenant) => {
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: ISSUE,
        tenant,
        peak: { cpu: '1', memory: '64Mi' },
        snapshot: 'always',
        steps: [{ name: 'work', run: ['sh', '-c', 'echo done; echo scratch > "$FERRY_SCRATCH/x"'] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const approved = await s.server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
      if (approved.status !== 200) throw new Error(`approve: ${approved.status}`);
      return filed.body.id as string;
    });
    for (;;) {
      const open = await listAllMigrations(s.server.api, 'state=filed,approved,queued,running');
      if (open.length === 0) break;
      await sleep(100);
    }
    const artifactsBefore = countArtifacts(await details(s, ids), false);
    const t0 = wallMs();
    const closed = await s.server.api('POST', `/v1/issues/${encodeURIComponent(ISSUE)}/close`, {});
    const ms = wallMs() - t0;
    if (closed.status !== 200) throw new Error(`close: ${closed.status}`);
    const left =
      countArtifacts(await details(s, ids), true) + leftoverFiles(s.dataDir) + processesMatching(join(s.dataDir, 'jobs')).length + leftoverCgroups(s.pid, ids);
    const c = 'teardown';
    report.context(c, 'artifacts owned by the issue', artifactsBefore, 'artifacts');
    report.target(c, `close issue with ${COUNT} finished migrations until every artifact is gone`, ms / 1000, 's', '<', 2);
    report.target(c, 'artifacts left afterwards (files, processes, cgroups, rows)', left, 'items', '==', 0);
  } finally {
    await s.close();
  }
}

async function details(s: Awaited<ReturnType<typeof startBenchServer>>, ids: string[]): Promise<any[]> {
  return pool(ids, 8, async (id) => (await s.server.api('GET', `/v1/migrations/${id}`)).body);
}

function countArtifacts(ms: any[], presentOnly: boolean): number {
  return ms.reduce((n, m) => n + (m.artifacts as Array<{ state: string }>).filter((a) => !presentOnly || a.state !== 'removed').length, 0);
}

function leftoverFiles(dataDir: string): number {
  let n = 0;
  for (const sub of ['jobs', 'scratch', 'snapshots', 'logs']) {
    const dir = join(dataDir, sub);
    if (existsSync(dir)) n += readdirSync(dir).length;
  }
  return n;
}

/** The server's Ferry cgroups (v1 or v2) named after one of these migrations. */
function leftoverCgroups(pid: number, ids: string[]): number {
  const dirs = new Set<string>(['/sys/fs/cgroup/ferry']);
  try {
    for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
      const [, controllers = '', path = ''] = line.split(':');
      for (const c of controllers.split(',')) if (c) dirs.add(join('/sys/fs/cgroup', c === 'cpu' || c === 'cpuacct' ? 'cpu,cpuacct' : c, path, 'ferry'));
      if (controllers.includes('cpu')) dirs.add(join('/sys/fs/cgroup/cpu', path, 'ferry'));
    }
  } catch {
    // the server is gone: nothing to read
  }
  let n = 0;
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) if (ids.some((id) => name.startsWith(id))) n++;
  }
  return n;
}
