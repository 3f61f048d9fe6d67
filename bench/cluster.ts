/**
 * Cluster cost (issue 9): the lifecycle measurement with 1, 2 and 3 `ferry serve` nodes over one
 * PostgreSQL database (127.0.0.1:5432, user postgres; a fresh database per configuration, dropped
 * after). Every node runs on this machine, with its own data folder and port; the first node writes
 * the admin token and the others accept it.
 *
 * Per configuration:
 * - throughput: COUNT tenants spread evenly over the nodes, each with one one-step migration filed
 *   through its tenant's node and approved through the next node (another node whenever there is
 *   more than one: the push path of issue 9), CONCURRENCY clients in flight, until all succeeded.
 *   Figures: migrations per second end to end, approval-to-process-start p50/p99 under that load,
 *   and the nodes' CPU time per migration;
 * - one at a time: IDLE migrations, each filed, approved through another node and awaited before
 *   the next, so the approval-to-start latency is the push path and a start, not a queue; also
 *   to the attempt's `startedAt` (the tenant's node recording the start, before it spawns the job).
 *
 * The baseline of every figure is the 1-node configuration over PostgreSQL measured in the same
 * run (each note gives the ratio to it); the raw-spawn baseline of bench/lifecycle.ts (the same
 * processes spawned straight from Node, CONCURRENCY in flight) is measured first, in the same run.
 *
 * The step is lifecycle's `true` with a timestamp, `sh -c 'date +%s%N > "$FERRY_SCRATCH/started"'`:
 * the start is seen from the job's side, and the file is read from the data folder of the tenant's
 * node, which also proves the attempt ran on that node. All nodes share this machine's cores (and
 * PostgreSQL's), so more nodes measure coordination cost, not added capacity.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { call, listAllMigrations, tempDir, waitFor } from '../test/support/harness.ts';
import { POSTGRES_ADDRESS, postgresUnreachable, postgresUrl } from '../test/support/postgres.ts';
import { baseline } from './lifecycle.ts';
import { BIG_CAPACITY, stopNodes } from './server.ts';
import { approve, fileStamp, registerTenants, type Api } from './stamp-migrations.ts';
import { median, percentile, pool, procSample, sleep, wallMs, type Report } from './support.ts';

const C = 'cluster';
const NODE_COUNTS = [1, 2, 3];
/** Migrations (one per tenant) in each configuration's throughput run. */
const COUNT = Number(process.env.FERRY_BENCH_CLUSTER_COUNT ?? 120);
/** Migrations filed, approved and awaited one at a time in each configuration. */
const IDLE = Number(process.env.FERRY_BENCH_CLUSTER_IDLE ?? 40);
/** API clients in flight, and processes in flight for the raw-spawn baseline (as in lifecycle). */
const CONCURRENCY = 32;
const ISSUE = 'github:acme/bench#9';
const WARM_ISSUE = 'github:acme/bench#90';
const BIN = new URL('../bin/ferry.js', import.meta.url).pathname;
/** Longest wait for a configuration's migrations to finish before it is reported as failed. */
const SETTLE_MS = 120_000;

interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly api: Api;
  /** The end of what the node wrote to stdout and stderr, for error messages. */
  output(): string;
}

interface Measured {
  readonly nodes: number;
  readonly ratePerS: number;
  readonly wholeMs: number;
  readonly filedMs: number;
  readonly loadP50: number;
  readonly loadP99: number;
  readonly idleP50: number;
  readonly idleP99: number;
  /** One at a time, approve request sent → the attempt's recorded start (`startedAt`, the tenant's node's scheduling pass). */
  readonly recordedP50: number;
  readonly recordedP99: number;
  readonly cpuMsPerMigration: number;
}

export async function clusterBench(report: Report): Promise<void> {
  const unreachable = await postgresUnreachable();
  if (unreachable !== null) throw new Error(`PostgreSQL not reachable at ${POSTGRES_ADDRESS}: ${unreachable}`);

  const rawMs = await baseline(COUNT, CONCURRENCY);
  report.context(C, `baseline: ${COUNT} processes spawned from Node, ${CONCURRENCY} in flight`, rawMs, 'ms');

  const errors: string[] = [];
  let single: Measured | null = null;
  for (const n of NODE_COUNTS) {
    const started = Date.now();
    let m: Measured;
    try {
      m = await measure(n);
    } catch (err) {
      errors.push(`${n} node(s): ${(err as Error).stack ?? String(err)}`);
      process.stderr.write(`cluster: ${n} node(s) failed: ${(err as Error).message}\n`);
      continue;
    }
    process.stderr.write(`cluster: ${n} node(s) measured in ${Math.round((Date.now() - started) / 1000)} s\n`);
    if (n === 1) single = m;
    reportConfiguration(report, m, single, rawMs);
  }
  if (errors.length > 0) throw new Error(`cluster benchmark: ${errors.length} configuration(s) failed:\n${errors.join('\n')}`);
}

function reportConfiguration(report: Report, m: Measured, single: Measured | null, rawMs: number): void {
  const label = m.nodes === 1 ? '1 node' : `${m.nodes} nodes`;
  const via = m.nodes === 1 ? 'approved through the same node' : "approved through another node than the tenant's";
  const vs = (value: number, base: number | undefined, unit: string): string => {
    if (m.nodes === 1) return 'baseline: 1 node over PostgreSQL';
    if (base === undefined) return 'no 1-node figure (that configuration failed)';
    return `${ratio(value / base)} x the 1-node figure (${fmt(base)} ${unit})`;
  };
  report.context(
    C,
    `migrations per second end to end (${COUNT}), ${label}`,
    m.ratePerS,
    'migrations/s',
    `${vs(m.ratePerS, single?.ratePerS, 'migrations/s')}; whole run ${Math.round(m.wholeMs)} ms = ${ratio(m.wholeMs / rawMs)} x raw spawn; filing and approving took ${Math.round(m.filedMs)} ms`,
  );
  report.context(
    C,
    `approval-to-process-start p50 under load (${CONCURRENCY} clients), ${label}`,
    m.loadP50,
    'ms',
    `${vs(m.loadP50, single?.loadP50, 'ms')}; from the approve request sent, ${via}`,
  );
  report.context(C, `approval-to-process-start p99 under load (${CONCURRENCY} clients), ${label}`, m.loadP99, 'ms', vs(m.loadP99, single?.loadP99, 'ms'));
  report.context(
    C,
    `approval-to-process-start p50 one at a time (${IDLE}), ${label}`,
    m.idleP50,
    'ms',
    `${vs(m.idleP50, single?.idleP50, 'ms')}; from the approve request sent, ${via}`,
  );
  report.context(C, `approval-to-process-start p99 one at a time (${IDLE}), ${label}`, m.idleP99, 'ms', vs(m.idleP99, single?.idleP99, 'ms'));
  report.context(
    C,
    `approval-to-start-recorded p50 one at a time (${IDLE}), ${label}`,
    m.recordedP50,
    'ms',
    `${vs(m.recordedP50, single?.recordedP50, 'ms')}; to the attempt's startedAt; p99 ${fmt(m.recordedP99)} ms${m.nodes === 1 ? '' : ` (${single ? `${ratio(m.recordedP99 / single.recordedP99)} x` : 'no'} 1-node p99)`}`,
  );
  report.context(
    C,
    `nodes' CPU time per migration (all nodes, not PostgreSQL), ${label}`,
    m.cpuMsPerMigration,
    'ms',
    vs(m.cpuMsPerMigration, single?.cpuMsPerMigration, 'ms'),
  );
}

/** One configuration: a fresh database, `n` nodes, the throughput run, then the one-at-a-time run. */
async function measure(n: number): Promise<Measured> {
  const db = await createDatabase();
  const nodes: ClusterNode[] = [];
  let phaseStart = Date.now();
  const phase = (what: string) => {
    process.stderr.write(`cluster: ${n} node(s): ${what} in ${((Date.now() - phaseStart) / 1000).toFixed(1)} s\n`);
    phaseStart = Date.now();
  };
  try {
    const first = await startNode(`bench-1`, db.url, null);
    nodes.push(first);
    const token = readFileSync(join(first.dataDir, 'token'), 'utf8').trim();
    nodes.push(...(await Promise.all(Array.from({ length: n - 1 }, (_, i) => startNode(`bench-${i + 2}`, db.url, token)))));
    const home = (i: number) => nodes[i % n] as ClusterNode;
    const other = (i: number) => nodes[(i + 1) % n] as ClusterNode;

    phase('nodes started');
    const tenants = await registerTenants('load', COUNT, home, true);
    const idleTenants = await registerTenants('idle', IDLE, home, true);
    const warmTenants = await registerTenants('warm', n, home, true);

    phase('tenants registered');
    // Warm-up, not measured: one migration per node, so no configuration pays a node's first start.
    await Promise.all(warmTenants.map((tenant, i) => oneMigration(tenant, home(i), other(i), WARM_ISSUE)));

    phase('warm-up');
    // Throughput, CONCURRENCY clients.
    const cpuBefore = nodesCpu(nodes);
    const approvals = new Map<string, { sent: number; home: ClusterNode }>();
    const t0 = wallMs();
    await pool(tenants, CONCURRENCY, async (tenant, i) => {
      const id = await fileStamp(home(i), tenant, ISSUE);
      const sent = wallMs();
      await approve(other(i), id);
      approvals.set(id, { sent, home: home(i) });
    });
    const filedMs = wallMs() - t0;
    const settleBy = Date.now() + SETTLE_MS;
    for (;;) {
      const open = await listAllMigrations<{ id: string; state: string }>(first.api, 'state=filed,approved,queued,running');
      if (open.length === 0) break;
      if (Date.now() > settleBy) {
        const states = open.reduce<Record<string, number>>((acc, x) => ({ ...acc, [x.state]: (acc[x.state] ?? 0) + 1 }), {});
        throw new Error(`${open.length} migrations still open after ${SETTLE_MS / 1000} s: ${JSON.stringify(states)}`);
      }
      await sleep(100);
    }
    const cpuUsed = nodesCpu(nodes) - cpuBefore;
    const all = await listAllMigrations<{ id: string; state: string; updatedAt: string }>(first.api, `issue=${encodeURIComponent(ISSUE)}`);
    const failed = all.filter((x) => x.state !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} migrations did not succeed, e.g. ${JSON.stringify(failed[0])}`);
    if (all.length !== COUNT) throw new Error(`${all.length} migrations listed, ${COUNT} filed`);
    const wholeMs = Math.max(...all.map((x) => Date.parse(x.updatedAt))) - t0;
    const underLoad: number[] = [];
    for (const [id, at] of approvals) underLoad.push(startStamp(at.home, id) - at.sent);

    phase('throughput run');
    // One at a time: the approval's push to the tenant's node and one start, without a queue.
    const idle: number[] = [];
    const recorded: number[] = [];
    for (const [i, tenant] of idleTenants.entries()) {
      const id = await fileStamp(home(i), tenant, ISSUE);
      const sent = wallMs();
      await approve(other(i), id);
      const started = await waitFor(`migration ${id} to start on ${home(i).name}`, () => readStamp(home(i), id), 30_000);
      idle.push(started - sent);
      const done = await waitSucceeded(home(i), id);
      const attempt = done.attempts?.[0];
      if (attempt?.node !== undefined && attempt.node !== home(i).name)
        throw new Error(`migration ${id} of a tenant on ${home(i).name} started on ${attempt.node}`);
      recorded.push(Date.parse(attempt?.startedAt) - sent);
    }

    phase('one-at-a-time run');
    return {
      nodes: n,
      ratePerS: (COUNT / wholeMs) * 1000,
      wholeMs,
      filedMs,
      loadP50: percentile(underLoad, 50),
      loadP99: percentile(underLoad, 99),
      idleP50: median(idle),
      idleP99: percentile(idle, 99),
      recordedP50: median(recorded),
      recordedP99: percentile(recorded, 99),
      cpuMsPerMigration: (cpuUsed * 1000) / COUNT,
    };
  } catch (err) {
    const tails = nodes.map((x) => `--- ${x.name} (${x.url}): first warnings and errors, last lines ---\n${x.output()}`).join('\n');
    throw new Error(`${(err as Error).message}\n${tails}`, { cause: err });
  } finally {
    await stopNodes(nodes);
    await db.drop();
  }
}

async function oneMigration(tenant: string, home: ClusterNode, via: ClusterNode, issue: string): Promise<void> {
  const id = await fileStamp(home, tenant, issue);
  await approve(via, id);
  await waitSucceeded(home, id);
}

/** `GET /v1/migrations/:id` once the migration has ended; throws unless it succeeded. */
async function waitSucceeded(node: ClusterNode, id: string): Promise<any> {
  const body = await waitFor(
    `migration ${id} to finish`,
    async () => {
      const r = await node.api('GET', `/v1/migrations/${id}`);
      const s = r.body?.state as string | undefined;
      return s === 'succeeded' || s === 'failed' || s === 'held' || s === 'cancelled' ? r.body : null;
    },
    30_000,
  );
  if (body.state !== 'succeeded')
    throw new Error(`migration ${id} ended ${body.state}, not succeeded: ${JSON.stringify(body.heldDetail ?? body.failedStep ?? '')}`);
  return body;
}

/** The job's own start time (ms since the epoch), from the tenant's node's data folder; null until written. */
function readStamp(node: ClusterNode, id: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(node.dataDir, 'scratch', id, 'started'), 'utf8').trim();
  } catch {
    return null;
  }
  if (!/^\d{19}$/.test(text)) return null; // opened, not yet written
  return Number(BigInt(text) / 1000n) / 1000;
}

function startStamp(node: ClusterNode, id: string): number {
  const at = readStamp(node, id);
  if (at === null) throw new Error(`migration ${id} succeeded but left no start stamp in ${node.name}'s data folder: did it run on another node?`);
  return at;
}

function nodesCpu(nodes: readonly ClusterNode[]): number {
  return nodes.reduce((sum, x) => sum + (procSample(x.pid)?.cpu ?? 0), 0);
}

/**
 * `ferry serve --node NAME` over `databaseUrl` in a fresh data folder. The first node (token null)
 * writes the admin token to its data folder; the others are given it.
 */
async function startNode(name: string, databaseUrl: string, token: string | null): Promise<ClusterNode> {
  const dataDir = tempDir(`ferry-bench-${name}-`);
  const child = spawn(process.execPath, [BIN, '--data-dir', dataDir, 'serve', '--port', '0', '--database-url', databaseUrl, '--node', name, ...BIG_CAPACITY], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
  });
  // Keep reading both pipes (a full pipe would stall the node); keep its first warnings and errors, and its last lines, for error messages.
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
  const pid = child.pid;
  const node = (url: string, adminToken: string): ClusterNode => ({
    name,
    dataDir,
    child,
    pid: pid as number,
    url,
    api: (method, path, body) => call(url, adminToken, method, path, body),
    output,
  });
  try {
    if (pid === undefined) throw new Error('no pid');
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
    await waitFor(`node ${name} to answer healthz`, async () => (await call(url, null, 'GET', '/healthz')).status === 200);
    const who = await call(url, adminToken, 'GET', '/v1/tenants');
    if (who.status !== 200) throw new Error(`the admin token is refused (GET /v1/tenants: ${who.status} ${JSON.stringify(who.body)})`);
    return node(url, adminToken);
  } catch (err) {
    await stopNodes([node('', '')]);
    throw new Error(`ferry serve --node ${name}: ${(err as Error).message}`, { cause: err });
  }
}

/** A fresh database `ferry_bench_<random>` on the local PostgreSQL, and how to drop it. */
async function createDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `ferry_bench_${randomBytes(6).toString('hex')}`;
  await maintenance(`CREATE DATABASE ${name}`);
  return { url: postgresUrl(name), drop: () => maintenance(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

async function maintenance(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl('postgres'), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function ratio(v: number): string {
  return v.toFixed(2);
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(2);
}
