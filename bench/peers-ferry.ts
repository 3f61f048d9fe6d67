/**
 * Ferry in the peers case (bench/peers.ts): `ferry serve` nodes as child processes (one on SQLite,
 * or one or more over one fresh PostgreSQL database, as bench/cluster.ts starts them), and the two
 * load shapes through the HTTP API.
 *
 * The job is a one-step migration whose step is `sh -c 'date +%s%N > "$FERRY_SCRATCH/started"'`:
 * the start is read from the job's side, in the scratch folder of the tenant's node. One tenant per
 * migration (500 tenants, registered before anything is timed), so that one holder per tenant never
 * serialises two migrations; the paced phase reuses them (their first migrations have succeeded).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, listAllMigrations, tempDir, waitFor } from '../test/support/harness.ts';
import { BIG_CAPACITY, stopNodes } from './server.ts';
import { approve, fileStamp, registerTenants, type Api } from './stamp-migrations.ts';
import { backendsCpu, backendsCpuBetween, childrenNamed, createDatabase, paced, procCpu, requireStamp } from './peers-support.ts';
import { percentile, pool, sleep, wallMs } from './support.ts';

const BIN = new URL('../bin/ferry.js', import.meta.url).pathname;
/** Longest wait for a phase's migrations to finish before the run is reported as failed. */
const SETTLE_MS = 180_000;

export interface FerryNode {
  readonly name: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly api: Api;
  output(): string;
}

/** What one run of one Ferry configuration measured. CPU figures are milliseconds per job. */
export interface PhaseFigures {
  readonly jobs: number;
  readonly wholeMs: number;
  readonly ratePerS: number;
  /** Start latency: the job's own stamp − the approval request sent. */
  readonly latencies: number[];
  readonly serverCpuMs: number;
  /** Ferry's fork server (native/ferry-spawner.c), the server's child. */
  readonly spawnerCpuMs: number;
  /** What the spawner reaped: supervisors, the jobs' inits and the jobs themselves. */
  readonly jobTreeCpuMs: number;
  /** This database's PostgreSQL backends; null on SQLite. */
  readonly pgCpuMs: number | null;
  /** The benchmark's own process (the producers' HTTP clients and the watching), on the same cores. */
  readonly producerCpuMs: number;
  readonly note: string;
}

export interface FerryRun {
  readonly saturated: PhaseFigures;
  readonly paced: (PhaseFigures & { achievedPerS: number }) | null;
}

export interface FerryRunOptions {
  readonly store: 'sqlite' | 'postgres';
  readonly nodes: number;
  readonly jobs: number;
  readonly producers: number;
  /** Jobs of the paced phase (0: none) and their rate. */
  readonly pacedJobs: number;
  readonly pacedPerS: number;
  readonly run: number;
  /** Called with the database's name once the nodes are up (profiling hooks); not used by the case itself. */
  readonly onDatabase?: (name: string) => Promise<void>;
}

/** One run: fresh store and nodes, tenants, warm-up, the saturated phase, then the paced phase. */
export async function ferryRun(o: FerryRunOptions): Promise<FerryRun> {
  const db = o.store === 'postgres' ? await createDatabase('ferry_peers_bench') : null;
  const nodes: FerryNode[] = [];
  const label = `ferry ${o.store}${o.nodes > 1 ? ` ${o.nodes} nodes` : ''} run ${o.run}`;
  try {
    const first = await startFerryNode(o.nodes > 1 ? 'peers-1' : null, db?.url ?? null, null);
    nodes.push(first);
    const token = readFileSync(join(first.dataDir, 'token'), 'utf8').trim();
    nodes.push(...(await Promise.all(Array.from({ length: o.nodes - 1 }, (_, i) => startFerryNode(`peers-${i + 2}`, db?.url ?? null, token)))));
    const home = (i: number) => nodes[i % nodes.length] as FerryNode;
    // With several nodes, approvals go through another node than the tenant's: the push path (as bench/cluster.ts).
    const via = (i: number) => nodes[(i + 1) % nodes.length] as FerryNode;
    if (o.onDatabase && db) await o.onDatabase(db.name);

    const registered = await registerTenants('peer', Math.max(o.jobs, o.pacedJobs), home, o.nodes > 1);
    const tenants = registered.slice(0, o.jobs);
    const warm = await registerTenants('warm', 4 * o.nodes, home, o.nodes > 1);
    // Warm-up, not measured: a few migrations per node, so that no phase pays a node's first starts.
    await pool(warm, 8, async (tenant, i) => {
      const id = await fileStamp(home(i), tenant, 'github:acme/bench#1400');
      await approve(via(i), id);
    });
    await settle(first, 'github:acme/bench#1400', warm.length);

    const cpu = () => readCpu(nodes, db?.name ?? null);

    // Saturated: `producers` clients, each files and approves one migration after another.
    const satIssue = 'github:acme/bench#1401';
    const sentAt = new Map<string, { sent: number; home: FerryNode }>();
    const before = await cpu();
    const t0 = wallMs();
    await pool(tenants, o.producers, async (tenant, i) => {
      const id = await fileStamp(home(i), tenant, satIssue);
      const sent = wallMs();
      await approve(via(i), id);
      sentAt.set(id, { sent, home: home(i) });
    });
    const filedMs = wallMs() - t0;
    const endedAt = await settle(first, satIssue, o.jobs);
    const after = await cpu();
    const saturated = figures(o.jobs, endedAt - t0, sentAt, before, after, `filing and approving took ${Math.round(filedMs)} ms`);
    process.stderr.write(`peers: ${label} saturated: ${saturated.ratePerS.toFixed(1)} jobs/s, server CPU ${saturated.serverCpuMs.toFixed(2)} ms/job\n`);

    if (o.pacedJobs <= 0) return { saturated, paced: null };

    // Paced: file first (not timed), then approve on a schedule, open loop.
    const pacedIssue = 'github:acme/bench#1402';
    const ids = await pool(registered.slice(0, o.pacedJobs), o.producers, (tenant, i) => fileStamp(home(i), tenant, pacedIssue));
    await sleep(500);
    const pBefore = await cpu();
    const p0 = wallMs();
    const schedule = await paced(ids.length, o.pacedPerS, (i) => approve(via(i), ids[i] as string));
    const pSent = new Map<string, { sent: number; home: FerryNode }>();
    ids.forEach((id, i) => pSent.set(id, { sent: schedule.sent[i] as number, home: home(i) }));
    const pEnded = await settle(first, pacedIssue, ids.length);
    const pAfter = await cpu();
    const pacedFigures = figures(ids.length, pEnded - p0, pSent, pBefore, pAfter, `approvals sent at ${schedule.achievedPerS.toFixed(1)}/s`);
    process.stderr.write(
      `peers: ${label} paced: p50 ${percentile(pacedFigures.latencies, 50).toFixed(1)} ms, p99 ${percentile(pacedFigures.latencies, 99).toFixed(1)} ms\n`,
    );
    return { saturated, paced: { ...pacedFigures, achievedPerS: schedule.achievedPerS } };
  } catch (err) {
    const tails = nodes.map((x) => `--- ${x.name} (${x.url}): first warnings and errors, last lines ---\n${x.output()}`).join('\n');
    throw new Error(`${label}: ${(err as Error).message}\n${tails}`, { cause: err });
  } finally {
    await stopNodes(nodes);
    await db?.drop();
  }
}

interface CpuReading {
  /** The benchmark process (user + system), seconds. */
  producer: number;
  server: number;
  spawner: number;
  jobTree: number;
  backends: Map<number, number> | null;
}

async function readCpu(nodes: readonly FerryNode[], database: string | null): Promise<CpuReading> {
  const backends = database ? await backendsCpu(database) : null;
  const own = process.cpuUsage();
  const r: CpuReading = { producer: (own.user + own.system) / 1e6, server: 0, spawner: 0, jobTree: 0, backends };
  for (const n of nodes) {
    r.server += procCpu(n.pid)?.own ?? 0;
    for (const s of childrenNamed(n.pid, 'ferry-spawner')) {
      const c = procCpu(s);
      r.spawner += c?.own ?? 0;
      r.jobTree += c?.reaped ?? 0;
    }
  }
  return r;
}

function figures(
  jobs: number,
  wholeMs: number,
  sentAt: Map<string, { sent: number; home: FerryNode }>,
  before: CpuReading,
  after: CpuReading,
  note: string,
): PhaseFigures {
  const latencies: number[] = [];
  for (const [id, at] of sentAt)
    latencies.push(requireStamp(join(at.home.dataDir, 'scratch', id, 'started'), `migration ${id} (tenant's node ${at.home.name})`) - at.sent);
  const perJob = (s: number) => (s * 1000) / jobs;
  return {
    jobs,
    wholeMs,
    ratePerS: (jobs * 1000) / wholeMs,
    latencies,
    serverCpuMs: perJob(after.server - before.server),
    spawnerCpuMs: perJob(after.spawner - before.spawner),
    jobTreeCpuMs: perJob(after.jobTree - before.jobTree),
    pgCpuMs: before.backends && after.backends ? perJob(backendsCpuBetween(before.backends, after.backends)) : null,
    producerCpuMs: perJob(after.producer - before.producer),
    note,
  };
}

/**
 * Wait until no migration of `issue` is open, check that all `count` succeeded, and return when the
 * last one ended (its updatedAt, the server's clock, on this machine). Polls one row a time, every
 * 50 ms, so that watching costs the server little.
 */
async function settle(node: FerryNode, issue: string, count: number): Promise<number> {
  const q = `issue=${encodeURIComponent(issue)}&state=filed,approved,queued,running&limit=1`;
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const r = await node.api('GET', `/v1/migrations?${q}`);
    if (r.status !== 200) throw new Error(`GET /v1/migrations?${q}: ${r.status} ${JSON.stringify(r.body)}`);
    if ((r.body as unknown[]).length === 0) break;
    if (Date.now() > deadline) throw new Error(`migrations of ${issue} still open after ${SETTLE_MS / 1000} s`);
    await sleep(50);
  }
  const all = await listAllMigrations<{ id: string; state: string; updatedAt: string }>(node.api, `issue=${encodeURIComponent(issue)}`);
  const failed = all.filter((m) => m.state !== 'succeeded');
  if (failed.length > 0) throw new Error(`${failed.length} migrations of ${issue} did not succeed, e.g. ${JSON.stringify(failed[0])}`);
  if (all.length !== count) throw new Error(`${all.length} migrations of ${issue} listed, ${count} filed`);
  return Math.max(...all.map((m) => Date.parse(m.updatedAt)));
}

/**
 * `ferry serve` in a fresh data folder: on SQLite when `databaseUrl` is null, else over it as node
 * `name` (null: the host name). The first node (token null) writes the admin token; the others are
 * given it. `extraArgs` go before the serve flags (profiling: `--cpu-prof`).
 */
export async function startFerryNode(name: string | null, databaseUrl: string | null, token: string | null, nodeArgs: string[] = []): Promise<FerryNode> {
  const label = name ?? 'ferry';
  const dataDir = tempDir(`ferry-bench-peers-${label}-`);
  const args = [...nodeArgs, BIN, '--data-dir', dataDir, 'serve', '--port', '0', ...BIG_CAPACITY];
  if (databaseUrl) args.push('--database-url', databaseUrl);
  if (name) args.push('--node', name);
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
  });
  // Keep reading both pipes (a full pipe would stall the node); keep its first warnings and errors, and its last lines.
  const lines: string[] = [];
  const problems: string[] = [];
  let partial = '';
  const keep = (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      if (lines.length > 8) lines.shift();
      if (problems.length < 8 && !/"level":"(info|debug)"/.test(line)) problems.push(line.slice(0, 2000));
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => [...new Set([...problems, ...lines, partial])].filter(Boolean).join('\n');
  const node = (url: string, adminToken: string): FerryNode => ({
    name: label,
    dataDir,
    child,
    pid: child.pid as number,
    url,
    api: (method, path, body) => call(url, adminToken, method, path, body),
    output,
  });
  try {
    if (child.pid === undefined) throw new Error('no pid');
    const deadline = Date.now() + 30_000;
    let url = '';
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited ${child.exitCode ?? child.signalCode}: ${output()}`);
      const p = join(dataDir, 'server-url');
      url = existsSync(p) ? readFileSync(p, 'utf8').trim() : '';
      if (url) break;
      if (Date.now() > deadline) throw new Error(`no ${p} after 30 s: ${output()}`);
      await sleep(25);
    }
    const adminToken = token ?? readFileSync(join(dataDir, 'token'), 'utf8').trim();
    await waitFor(`node ${label} to answer healthz`, async () => (await call(url, null, 'GET', '/healthz')).status === 200);
    return node(url, adminToken);
  } catch (err) {
    await stopNodes([node('', '')]);
    throw new Error(`ferry serve ${label}: ${(err as Error).message}`, { cause: err });
  }
}
