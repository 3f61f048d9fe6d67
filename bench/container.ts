/**
 * Container case (issue 4; target 5 of issue 11): a one-step migration `sh -c 'echo hi'` on the
 * `container` substrate (Podman's Docker API socket, image localhost/ferry-test:1) against a raw
 * `podman run --rm localhost/ferry-test:1 sh -c 'echo hi'`, RUNS times each, the two alternating so
 * that both see the same load of the machine, each after a pause. Figures (medians): approval →
 * first output line in the attempt log, approval → succeeded, its overhead over the raw run, and
 * the ratio (target ≤ 1.1 x). Skipped, loudly, without Podman.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pings } from '../test/lifecycle/container-kit.ts';
import { startBenchServer } from './server.ts';
import { median, sleep, wallMs, type Report } from './support.ts';

const SOCKET = (process.env.FERRY_BENCH_DOCKER_SOCKET ?? 'unix:///run/podman/podman.sock').replace(/^unix:\/\//, '');
const IMAGE = 'localhost/ferry-test:1';
const RUNS = 10;
/**
 * Pause before each measured run: the engine finishes the previous container's cleanup (Podman's
 * cleanup process runs after a container's exit, after Ferry has recorded the outcome), so that
 * neither side is measured while the other's leftovers still take the CPU.
 */
const SETTLE_MS = 1000;
const execFileAsync = promisify(execFile);

export async function containerBench(report: Report): Promise<void> {
  const missing = await unavailable();
  if (missing) {
    process.stderr.write(`SKIPPED container benchmark: ${missing}; run .ci/setup-podman.sh\n`);
    report.context('container', `SKIPPED: ${missing}`, Number.NaN, '');
    return;
  }
  const volume = `ferry-bench-${process.pid}`;
  await execFileAsync('podman', ['volume', 'create', volume]);
  const s = await startBenchServer(['--substrate', 'container'], { FERRY_DOCKER_SOCKET: SOCKET, FERRY_DEFAULT_IMAGE: IMAGE });
  const raw: number[] = [];
  const firstLine: number[] = [];
  const whole: number[] = [];
  try {
    const put = await s.server.api('PUT', '/v1/tenants/box', { steadyState: { cpu: '500m', memory: '64Mi' }, data: volume });
    if (put.status !== 201) throw new Error(`PUT tenant: ${put.status} ${JSON.stringify(put.body)}`);
    for (let i = 0; i < RUNS; i++) {
      await sleep(SETTLE_MS);
      raw.push(await rawRun());
      const filed = await s.server.api('POST', '/v1/migrations', {
        issue: 'github:acme/bench#5',
        tenant: 'box',
        peak: { cpu: '1', memory: '128Mi' },
        snapshot: 'never',
        image: IMAGE,
        steps: [{ name: 'hi', run: ['sh', '-c', 'echo hi'] }],
      });
      if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
      const id = filed.body.id as string;
      const log = join(s.dataDir, 'logs', id, 'attempt-1.log');
      await sleep(SETTLE_MS);
      const t0 = wallMs();
      const approved = await s.server.api('POST', `/v1/migrations/${id}/approve`, {});
      if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
      // The first line of the job's own output (Ferry's `── ferry:` header lines come before it).
      for (;;) {
        if (existsSync(log) && /^hi$/m.test(readFileSync(log, 'utf8'))) break;
        if (wallMs() - t0 > 120_000) throw new Error('no output line within 120 s');
        await sleep(2);
      }
      firstLine.push(wallMs() - t0);
      let m: any;
      for (;;) {
        m = (await s.server.api('GET', `/v1/migrations/${id}`)).body;
        if (m.state !== 'running' && m.state !== 'queued') break;
        await sleep(20);
      }
      if (m.state !== 'succeeded') throw new Error(`container migration ended ${m.state}: ${m.heldDetail}`);
      whole.push(Date.parse(m.updatedAt) - t0);
    }
    const c = 'container';
    const runs = (xs: number[]) => `runs: ${xs.map((x) => Math.round(x)).join(' ')}`;
    report.context(c, `raw podman run --rm … echo hi (median of ${RUNS})`, median(raw), 'ms', runs(raw));
    report.context(c, `approval to first output line (median of ${RUNS})`, median(firstLine), 'ms', runs(firstLine));
    report.context(c, `approval to succeeded (median of ${RUNS})`, median(whole), 'ms', runs(whole));
    report.context(c, 'whole-migration overhead over the raw run', median(whole) - median(raw), 'ms');
    report.target(c, 'whole migration / raw run', median(whole) / median(raw), 'x', '<=', 1.1);
    await s.server.api('POST', `/v1/issues/${encodeURIComponent('github:acme/bench#5')}/close`, {});
  } finally {
    await s.close();
    await execFileAsync('podman', ['volume', 'rm', '-f', volume]).catch(() => undefined);
  }
}

/** One `podman run --rm … echo hi`, in ms. */
async function rawRun(): Promise<number> {
  const t0 = wallMs();
  const { stdout } = await execFileAsync('podman', ['run', '--rm', IMAGE, 'sh', '-c', 'echo hi']);
  const ms = wallMs() - t0;
  if (stdout.trim() !== 'hi') throw new Error(`podman run printed ${JSON.stringify(stdout)}`);
  return ms;
}

async function unavailable(): Promise<string | null> {
  if (!(await pings(SOCKET))) return `the Docker API socket ${SOCKET} does not answer`;
  try {
    await execFileAsync('podman', ['image', 'exists', IMAGE]);
  } catch {
    return `podman or the image ${IMAGE} is missing`;
  }
  return null;
}
