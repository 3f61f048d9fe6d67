/**
 * Log capture: one job writes 1 GiB to stdout in 128-byte lines, with a `::ferry::progress` line
 * after every MiB. Ferry's throughput (bytes over approval → succeeded, so it includes the runner
 * reading the whole log for `::ferry::` lines) against the same stream piped through `cat` into a
 * file on the same disk, measured in the same run.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchServer } from './server.ts';
import { sleep, wallMs, type Report } from './support.ts';

const MIB = Number(process.env.FERRY_BENCH_LOG_MIB ?? 1024);
const GENERATE = `i=0; while [ $i -lt ${MIB} ]; do i=$((i+1)); cat "$CHUNK"; echo "::ferry::progress $i/${MIB}"; done`;

export async function logCaptureBench(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-log-'));
  const chunk = join(dir, 'chunk');
  const line = `${'x'.repeat(127)}\n`;
  writeFileSync(chunk, line.repeat(8192)); // 1 MiB
  const bytes = MIB * 2 ** 20;
  try {
    const baselineMs = await run('sh', ['-c', `{ ${GENERATE}; } | cat > "${join(dir, 'out')}"`], { CHUNK: chunk });
    const out = statSync(join(dir, 'out')).size;
    rmSync(join(dir, 'out'));
    // The whole output is kept (logLimit above it), as `cat` keeps it: this measures capture, not the bound.
    const s = await startBenchServer(undefined, { FERRY_LOG_LIMIT: '2Gi' });
    try {
      await s.tenants('log', 1, { cpu: '1', memory: '256Mi' });
      // A confined job sees only its tenant's data and scratch: the chunk goes in its data folder.
      const tenantChunk = join(s.dataDir, 'tenants', 'log-0000', 'chunk');
      copyFileSync(chunk, tenantChunk);
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: 'github:acme/bench#3',
        tenant: 'log-0000',
        peak: { cpu: '2', memory: '512Mi' },
        snapshot: 'never',
        env: { CHUNK: tenantChunk },
        steps: [{ name: 'chatty', run: ['sh', '-c', GENERATE] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const id = filed.body.id as string;
      const t0 = wallMs();
      const approved = await s.server.api('POST', `/v1/migrations/${id}/approve`, {});
      if (approved.status !== 200) throw new Error(`approve: ${approved.status}`);
      let m: any;
      for (;;) {
        m = (await s.server.api('GET', `/v1/migrations/${id}`)).body;
        if (m.state !== 'running' && m.state !== 'queued') break;
        await sleep(50);
      }
      if (m.state !== 'succeeded') throw new Error(`the chatty migration ended ${m.state}: ${m.heldDetail}`);
      const ferryMs = Date.parse(m.updatedAt) - t0;
      const logSize = statSync(join(s.dataDir, 'logs', id, 'attempt-1.log')).size;
      if (logSize < bytes) throw new Error(`the log holds ${logSize} bytes, less than the ${bytes} the job wrote: the job did not run as measured`);
      const c = 'log-capture';
      const base = (bytes / baselineMs) * 1000;
      const ferry = (bytes / ferryMs) * 1000;
      report.context(c, `baseline: the stream through cat into a file (${out} bytes)`, base / 2 ** 20, 'MiB/s');
      report.context(c, `Ferry: approval to succeeded, log of ${logSize} bytes`, ferry / 2 ** 20, 'MiB/s');
      report.target(c, 'Ferry / baseline', ferry / base, 'x', '>=', 0.5);
      report.context(c, 'last progress the runner recorded', m.progress ? m.progress.done : 0, `of ${MIB}`);
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  const t0 = wallMs();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, ...env } });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(wallMs() - t0) : reject(new Error(`${cmd} exited ${code}`))));
  });
}
