/**
 * Swarm case (issue 13): a one-step migration `sh -c 'echo hi'` on the `swarm` substrate (the
 * single-node swarm of scripts/setup-swarm.sh, image localhost/ferry-test:1) against a raw
 * `docker service create --mode replicated-job` of the same command (waited for until its task
 * completed), both measured in the same run, RUNS times each (medians). Figures: approval →
 * succeeded, its overhead over the raw job, and the ratio. Skipped, loudly, without the swarm.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { pings } from '../test/lifecycle/container-kit.ts';
import { startBenchServer } from './server.ts';
import { median, sleep, wallMs, type Report } from './support.ts';

const SOCKET = (process.env.FERRY_BENCH_SWARM_SOCKET ?? 'unix:///run/ferry-swarm/docker.sock').replace(/^unix:\/\//, '');
const IMAGE = 'localhost/ferry-test:1';
const RUNS = 5;
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const execFileAsync = promisify(execFile);

function docker(...args: string[]): Promise<{ stdout: string }> {
  return execFileAsync(DOCKER, ['-H', `unix://${SOCKET}`, ...args]);
}

export async function swarmBench(report: Report): Promise<void> {
  const missing = await unavailable();
  if (missing) {
    process.stderr.write(`SKIPPED swarm benchmark: ${missing}; run scripts/setup-swarm.sh\n`);
    report.context('swarm', `SKIPPED: ${missing}`, Number.NaN, '');
    return;
  }
  const raw: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = `ferry-bench-raw-${process.pid}-${i}`;
    const t0 = wallMs();
    await docker('service', 'create', '-d', '--quiet', '--name', name, '--mode', 'replicated-job', '--restart-condition', 'none', IMAGE, 'sh', '-c', 'echo hi');
    for (;;) {
      const { stdout } = await docker('service', 'ps', '--format', '{{.CurrentState}}', name);
      if (/^Complete/m.test(stdout)) break;
      if (/^(Failed|Rejected)/m.test(stdout)) throw new Error(`raw swarm job ended ${stdout.trim()}`);
      if (wallMs() - t0 > 120_000) throw new Error('raw swarm job did not complete within 120 s');
      await sleep(20);
    }
    raw.push(wallMs() - t0);
    await docker('service', 'rm', name);
    // Docker 20.10 leaves a finished task's container behind after its service is removed.
    const { stdout: left } = await docker('ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${name}`);
    for (const id of left.split('\n').filter(Boolean)) await docker('rm', '-f', id).catch(() => undefined);
  }
  const volume = `ferry-bench-${process.pid}`;
  await docker('volume', 'create', volume);
  const s = await startBenchServer(undefined, {
    FERRY_SUBSTRATE: 'swarm',
    FERRY_DOCKER_SOCKET: SOCKET,
    FERRY_DEFAULT_IMAGE: IMAGE,
  });
  const whole: number[] = [];
  try {
    const put = await s.server.api('PUT', '/v1/tenants/box', { steadyState: { cpu: '500m', memory: '64Mi' }, data: volume });
    if (put.status !== 201) throw new Error(`PUT tenant: ${put.status} ${JSON.stringify(put.body)}`);
    for (let i = 0; i < RUNS; i++) {
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: 'github:acme/bench#13',
        tenant: 'box',
        peak: { cpu: '1', memory: '128Mi' },
        snapshot: 'never',
        image: IMAGE,
        steps: [{ name: 'hi', run: ['sh', '-c', 'echo hi'] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const id = filed.body.id as string;
      const t0 = wallMs();
      const approved = await s.server.api('POST', `/v1/migrations/${id}/approve`, {});
      if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
      let m: any;
      for (;;) {
        m = (await s.server.api('GET', `/v1/migrations/${id}`)).body;
        if (m.state !== 'running' && m.state !== 'queued') break;
        if (wallMs() - t0 > 180_000) throw new Error('swarm migration did not end within 180 s');
        await sleep(20);
      }
      if (m.state !== 'succeeded') throw new Error(`swarm migration ended ${m.state}: ${m.heldDetail}`);
      whole.push(Date.parse(m.updatedAt) - t0);
    }
    const c = 'swarm';
    report.context(c, `raw docker service create --mode replicated-job … echo hi, until complete (median of ${RUNS})`, median(raw), 'ms');
    report.context(c, `approval to succeeded (median of ${RUNS})`, median(whole), 'ms');
    report.context(c, 'whole-migration overhead over the raw job', median(whole) - median(raw), 'ms');
    report.context(c, 'whole migration / raw job', median(whole) / median(raw), 'x');
    await s.server.api('POST', `/v1/issues/${encodeURIComponent('github:acme/bench#13')}/close`, {});
  } finally {
    await s.close();
    await docker('volume', 'rm', '-f', volume).catch(() => undefined);
  }
}

async function unavailable(): Promise<string | null> {
  if (!(await pings(SOCKET))) return `the swarm manager's socket ${SOCKET} does not answer`;
  try {
    const { stdout } = await docker('info', '--format', '{{.Swarm.LocalNodeState}}');
    if (stdout.trim() !== 'active') return `the engine at ${SOCKET} is not in a swarm`;
    await docker('image', 'inspect', IMAGE);
  } catch {
    return `docker or the image ${IMAGE} is missing on the swarm engine`;
  }
  return null;
}

// Run alone: `node --import tsx bench/swarm.ts` (bench/run-all.ts does not list this case yet).
if (import.meta.url === `file://${process.argv[1]}`) {
  const { Report } = await import('./support.ts');
  const report = new Report();
  await swarmBench(report);
  process.stdout.write(`${report.table()}\n`);
}
