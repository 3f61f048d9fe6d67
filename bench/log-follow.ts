/**
 * Log following: 100 clients follow one running job's log (`?follow=true`) while the job writes
 * 50 MB of numbered 100-byte lines. Each client must receive exactly the bytes of the attempt's log
 * file, in order (same length and sha256), and the file must be Ferry's header lines followed by
 * exactly what the job wrote (computed here). Figures: bytes per client, clients complete and in
 * order, job start → last client done, the job's own write time against the same job with no
 * follower (measured first, in the same run), the server's CPU time, CPU share and RSS while it
 * serves the followers, and the CPU of the clients, which run in this process on the same machine.
 *
 * The job waits for a file in its tenant's data folder before it writes, so every follower is
 * connected (answered 200) when the writing starts: this measures following a log as it grows, not
 * reading a finished one. The job stamps its start and end with `date +%s%N` (in its scratch). It
 * uses only sh, awk, sleep and date, which a confined job sees (the system folders, read-only).
 *
 * The server runs with maxFollowersPerToken 100 (the default 20 would refuse 80 of the clients): a
 * follower costs the same whichever token it uses, and one token keeps the case to the admin token
 * the bench server already has. logLimit is 128Mi so the whole 50 MB reaches the log as written;
 * with the default 64Mi, bytes past 32 MiB would be held by the supervisor until the job ends.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { startBenchServer, type BenchServer } from './server.ts';
import { procSample, sleep, wallMs, type Report } from './support.ts';

const CLIENTS = Number(process.env.FERRY_BENCH_FOLLOWERS ?? 100);
const LINES = Number(process.env.FERRY_BENCH_FOLLOW_LINES ?? 500_000);
/** `%08d ` + 90 x's + newline: 100 bytes a line, 50 MB for 500,000 lines. */
const WRITE = `awk 'BEGIN { pad = sprintf("%90s", ""); gsub(/ /, "x", pad); for (i = 1; i <= ${LINES}; i++) printf "%08d %s\\n", i, pad }'`;
const STEP = [
  'i=0; while [ ! -e "$FERRY_TENANT_DATA/$GO" ] && [ $i -lt 3000 ]; do i=$((i+1)); sleep 0.02; done',
  'date +%s%N > "$FERRY_SCRATCH/started"',
  WRITE,
  'date +%s%N > "$FERRY_SCRATCH/ended"',
].join('; ');
const TENANT = 'follow-0000';

interface Received {
  readonly bytes: number;
  readonly sha256: string;
  readonly doneAt: number;
}

export async function logFollowBench(report: Report): Promise<void> {
  const s = await startBenchServer(undefined, { FERRY_LOG_LIMIT: '128Mi', FERRY_MAX_FOLLOWERS_PER_TOKEN: String(CLIENTS) });
  try {
    await s.tenants('follow', 1, { cpu: '1', memory: '256Mi' });
    const expected = expectedLog();

    // Baseline: the same job with nobody following.
    writeFileSync(join(s.dataDir, 'tenants', TENANT, 'go-baseline'), '');
    const base = await fileAndApprove(s, 'go-baseline');
    await untilSucceeded(s, base);
    const baseWrite = jobTimes(s, base);

    const id = await fileAndApprove(s, 'go-followed');
    await until(async () => (await s.server.api('GET', `/v1/migrations/${id}`)).body.state === 'running');
    const rssBefore = procSample(s.pid)?.rss ?? 0;
    const url = `${s.server.url}/v1/migrations/${id}/logs?follow=true`;
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => follow(url, s.server.token)));
    let peakRss = procSample(s.pid)?.rss ?? 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakRss = Math.max(peakRss, procSample(s.pid)?.rss ?? 0);
        await sleep(20);
      }
    })();
    const before = procSample(s.pid);
    const clientCpu0 = process.cpuUsage();
    const w0 = wallMs();
    writeFileSync(join(s.dataDir, 'tenants', TENANT, 'go-followed'), '');
    const received = await Promise.all(clients.map((f) => f.done));
    const lastDone = Math.max(...received.map((r) => r.doneAt));
    const after = procSample(s.pid);
    const windowS = (wallMs() - w0) / 1000;
    const clientCpu = process.cpuUsage(clientCpu0);
    sampling = false;
    await sampler;
    await untilSucceeded(s, id);
    const followedWrite = jobTimes(s, id);

    const log = join(s.dataDir, 'logs', id, 'attempt-1.log');
    const file = { bytes: statSync(log).size, sha256: await sha256File(log) };
    // The log opens with Ferry's own header lines, then holds exactly what the job wrote.
    const header = readHead(log, Math.max(0, file.bytes - expected.bytes));
    if (!/^(── ferry: .*\n)+$/.test(header.toString()) || expectedLog(header).sha256 !== file.sha256) {
      throw new Error(`the log (${file.bytes} bytes) is not Ferry's header and what the job wrote (${expected.bytes} bytes): the job did not run as measured`);
    }
    const whole = received.filter((r) => r.bytes === file.bytes && r.sha256 === file.sha256).length;
    const cpu = before && after ? after.cpu - before.cpu : Number.NaN;
    const c = 'log-follow';
    report.context(c, 'log size (numbered 100-byte lines)', file.bytes / 1e6, 'MB');
    report.context(c, 'bytes each client received (fewest)', Math.min(...received.map((r) => r.bytes)) / 1e6, 'MB');
    report.target(c, `clients that received the whole log in order (of ${CLIENTS})`, whole, 'clients', '==', CLIENTS);
    report.context(c, 'job start to last client done', lastDone - followedWrite.startedAt, 'ms');
    report.context(c, 'job write time with followers', followedWrite.ms, 'ms');
    report.context(c, 'baseline: job write time with no follower', baseWrite.ms, 'ms');
    report.context(c, 'server CPU while following', cpu, 's', `over ${windowS.toFixed(2)} s from go to last client done`);
    report.context(c, 'server CPU share while following', (cpu / windowS) * 100, '% of one core');
    report.context(c, 'server RSS before the followers connect', rssBefore / 2 ** 20, 'MiB');
    report.context(c, 'server peak RSS while following', peakRss / 2 ** 20, 'MiB');
    report.context(c, "the clients' CPU (this process: receive and sha256)", (clientCpu.user + clientCpu.system) / 1e6, 's');
  } finally {
    await s.close();
  }
}

async function fileAndApprove(s: BenchServer, go: string): Promise<string> {
  const filed = await s.server.api('POST', '/v1/migrations', {
    issue: 'github:acme/bench#6',
    tenant: TENANT,
    peak: { cpu: '2', memory: '512Mi' },
    snapshot: 'never',
    env: { GO: go },
    steps: [{ name: 'numbered', run: ['sh', '-c', STEP], timeout: '5m' }],
  });
  if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
  const id = filed.body.id as string;
  const approved = await s.server.api('POST', `/v1/migrations/${id}/approve`, {});
  if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
  return id;
}

async function untilSucceeded(s: BenchServer, id: string): Promise<void> {
  await until(async () => {
    const m = (await s.server.api('GET', `/v1/migrations/${id}`)).body;
    if (m.state === 'succeeded') return true;
    if (m.state !== 'running' && m.state !== 'queued') throw new Error(`migration ${id} ended ${m.state}: ${m.heldDetail}`);
    return false;
  });
}

async function until(probe: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${ms} ms`);
    await sleep(10);
  }
}

/** The job's own start (wall ms) and write time, from its `date +%s%N` stamps. */
function jobTimes(s: BenchServer, id: string): { startedAt: number; ms: number } {
  const stamp = (name: string) => {
    const path = join(s.dataDir, 'scratch', id, name);
    if (!existsSync(path)) throw new Error(`the job left no ${name} stamp`);
    return Number(BigInt(readFileSync(path, 'utf8').trim()) / 1000n) / 1000;
  };
  const startedAt = stamp('started');
  return { startedAt, ms: stamp('ended') - startedAt };
}

/** Length and sha256 of what the awk program writes, after `header`, computed here. */
function expectedLog(header: Buffer = Buffer.alloc(0)): { bytes: number; sha256: string } {
  const hash = createHash('sha256').update(header);
  const pad = 'x'.repeat(90);
  let bytes = 0;
  for (let i = 1; i <= LINES; i += 10_000) {
    let part = '';
    for (let k = i; k < Math.min(i + 10_000, LINES + 1); k++) part += `${String(k).padStart(8, '0')} ${pad}\n`;
    hash.update(part);
    bytes += part.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

function readHead(path: string, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, readSync(fd, buf, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => hash.update(d))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** One follower on its own connection: resolves once answered 200; `done` once its response ends. */
function follow(url: string, token: string): Promise<{ done: Promise<Received> }> {
  return new Promise((answered, reject) => {
    const req = httpRequest(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`follow: ${res.statusCode}`));
        res.resume();
        return;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      const done = new Promise<Received>((ok, fail) => {
        res.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
        });
        res.on('end', () => ok({ bytes, sha256: hash.digest('hex'), doneAt: wallMs() }));
        res.on('error', fail);
      });
      answered({ done });
    });
    req.on('error', reject);
    req.end();
  });
}
