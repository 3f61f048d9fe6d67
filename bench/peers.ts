/**
 * Peers (issue 14): Ferry against graphile-worker on the same machine and the same PostgreSQL, the
 * same job, the same load shapes, in one run.
 *
 * The job, everywhere: spawn `sh -c 'date +%s%N > FILE'`. Its start is read from the job's side
 * (the nanosecond stamp it wrote) minus the time the producer sent the approval (Ferry) or called
 * `addJob` (graphile-worker).
 *
 * Systems, each on a fresh store per run:
 * - raw spawn: Node spawning the job, 32 in flight, JOBS jobs (the floor; bench/lifecycle.ts's baseline);
 * - graphile-worker (development dependency, used only here): concurrency 32, its own schema in a
 *   fresh database, the worker in a child process (bench/peers-graphile-worker.ts); producers add
 *   jobs with `addJob` (bench/peers-graphile.ts);
 * - Ferry on PostgreSQL: `ferry serve --database-url` on a fresh database, one node;
 * - Ferry on SQLite: `ferry serve` in a fresh data folder;
 * - Ferry on PostgreSQL with three nodes over one fresh database, saturated shape only: each
 *   migration filed through its tenant's node and approved through another (bench/peers-ferry.ts).
 * For Ferry a job is a one-step migration of its own tenant (one tenant per migration, so one
 * holder per tenant never serialises them), filed and approved over HTTP.
 *
 * Shapes:
 * - saturated: JOBS jobs by PRODUCERS concurrent producers (Ferry: each files, then approves, one
 *   migration after another); rate = jobs per second of wall time until all succeeded;
 * - paced: PACED jobs approved (added) at PACED_PER_S, open loop (Ferry: filed beforehand, not
 *   timed); start latency p50 / p99.
 * Three runs, alternating systems (raw, graphile-worker, Ferry PostgreSQL, Ferry SQLite, Ferry
 * 3 nodes; again; again); every figure is the median of the three, each run's value in its note.
 * CPU per job is read from /proc: the server's (all nodes'), or graphile-worker's worker process,
 * over the saturated phase; the notes add Ferry's spawner, what the spawner or worker reaped (the
 * jobs, and for Ferry their supervisors), the PostgreSQL backends of the system's database, and the
 * benchmark's own process (the producers), which competes for the same cores. "The whole system"
 * sums all but the producers.
 *
 * Knobs: FERRY_BENCH_PEERS_JOBS (500), FERRY_BENCH_PEERS_PACED (500), FERRY_BENCH_PEERS_RUNS (3),
 * FERRY_BENCH_PEERS_ONLY (comma-separated subset of raw, graphile, postgres, sqlite, nodes; default all).
 */
import { baseline } from './lifecycle.ts';
import { ferryRun, type FerryRun } from './peers-ferry.ts';
import { graphileRun, type GraphileRun } from './peers-graphile.ts';
import { POSTGRES_ADDRESS, postgresUnreachable } from '../test/support/postgres.ts';
import { median, percentile, type Report } from './support.ts';

const C = 'peers';
const JOBS = Number(process.env.FERRY_BENCH_PEERS_JOBS ?? 500);
const PACED = Number(process.env.FERRY_BENCH_PEERS_PACED ?? 500);
const RUNS = Number(process.env.FERRY_BENCH_PEERS_RUNS ?? 3);
const PRODUCERS = 32;
const PACED_PER_S = 50;
const NODES = 3;
const ONLY = new Set((process.env.FERRY_BENCH_PEERS_ONLY ?? 'raw,graphile,postgres,sqlite,nodes').split(',').map((s) => s.trim()));

/** One run's figures of one system; null where the system does not have it. */
interface Figures {
  rate: number;
  satP50: number;
  satP99: number;
  pacedP50: number | null;
  pacedP99: number | null;
  pacedAchieved: number | null;
  /** Server (all nodes) or worker process CPU, ms per job, saturated and paced. */
  cpu: number;
  pacedCpu: number | null;
  spawnerCpu: number | null;
  jobTreeCpu: number;
  pgCpu: number | null;
  pacedPgCpu: number | null;
  /** The benchmark process itself (producers and watching), ms per job, saturated. */
  producerCpu: number;
  /** Everything the system spent per job, saturated: server or worker, spawner, job processes, backends (not the producers). */
  systemCpu: number;
}

type SystemName = 'graphile-worker' | 'Ferry on PostgreSQL' | 'Ferry on SQLite' | `Ferry on PostgreSQL, ${number} nodes`;

export async function peersBench(report: Report): Promise<void> {
  const unreachable = await postgresUnreachable();
  if (unreachable !== null) throw new Error(`PostgreSQL not reachable at ${POSTGRES_ADDRESS}: ${unreachable}`);
  const threeNodes: SystemName = `Ferry on PostgreSQL, ${NODES} nodes`;
  const runs = new Map<SystemName | 'raw', Figures[]>();
  const errors: string[] = [];
  const keep = (name: SystemName | 'raw', f: Figures) => runs.set(name, [...(runs.get(name) ?? []), f]);
  const attempt = async (name: SystemName, run: number, fn: () => Promise<Figures>) => {
    const started = Date.now();
    try {
      keep(name, await fn());
    } catch (err) {
      errors.push(`${name}, run ${run}: ${(err as Error).stack ?? String(err)}`);
      process.stderr.write(`peers: ${name} run ${run} failed: ${(err as Error).message.split('\n')[0]}\n`);
    }
    process.stderr.write(`peers: ${name} run ${run}: ${Math.round((Date.now() - started) / 1000)} s\n`);
  };

  for (let run = 1; run <= RUNS; run++) {
    if (ONLY.has('raw')) {
      const rawMs = await baseline(JOBS, PRODUCERS);
      keep('raw', { ...empty(), rate: (JOBS * 1000) / rawMs });
    }
    const ferry = (store: 'sqlite' | 'postgres', nodes: number, pacedJobs: number) =>
      ferryRun({ store, nodes, jobs: JOBS, producers: PRODUCERS, pacedJobs, pacedPerS: PACED_PER_S, run }).then(fromFerry);
    if (ONLY.has('graphile'))
      await attempt('graphile-worker', run, async () =>
        fromGraphile(await graphileRun({ jobs: JOBS, producers: PRODUCERS, pacedJobs: PACED, pacedPerS: PACED_PER_S, run })),
      );
    if (ONLY.has('postgres')) await attempt('Ferry on PostgreSQL', run, () => ferry('postgres', 1, PACED));
    if (ONLY.has('sqlite')) await attempt('Ferry on SQLite', run, () => ferry('sqlite', 1, PACED));
    if (ONLY.has('nodes')) await attempt(threeNodes, run, () => ferry('postgres', NODES, 0));
  }

  const med = (name: SystemName | 'raw', pick: (f: Figures) => number | null): number => {
    const values = (runs.get(name) ?? []).map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
    return values.length > 0 ? median(values) : Number.NaN;
  };
  const each = (name: SystemName | 'raw', pick: (f: Figures) => number | null): string =>
    `runs: ${(runs.get(name) ?? []).map((f) => fmt(pick(f) ?? Number.NaN)).join(', ')}`;
  const gwRate = med('graphile-worker', (f) => f.rate);
  const pgRate = med('Ferry on PostgreSQL', (f) => f.rate);

  report.context(
    C,
    `raw spawn from Node, ${JOBS} jobs, ${PRODUCERS} in flight`,
    med('raw', (f) => f.rate),
    'jobs/s',
    each('raw', (f) => f.rate),
  );
  const systems: SystemName[] = ['graphile-worker', 'Ferry on PostgreSQL', 'Ferry on SQLite', threeNodes];
  for (const name of systems) {
    if (!runs.has(name)) continue;
    const rateName = `saturated (${JOBS} jobs, ${PRODUCERS} producers), ${name}`;
    const rate = med(name, (f) => f.rate);
    const rateNote = each(name, (f) => f.rate);
    if (name === 'Ferry on PostgreSQL') report.target(C, rateName, rate, 'jobs/s', '>=', round1(gwRate), `${rateNote}; target: graphile-worker in this run`);
    else if (name === threeNodes)
      report.target(C, rateName, rate, 'jobs/s', '>=', round1(pgRate), `${rateNote}; target: Ferry on PostgreSQL, 1 node, in this run`);
    else report.context(C, rateName, rate, 'jobs/s', rateNote);
    report.context(
      C,
      `saturated start latency p50, ${name}`,
      med(name, (f) => f.satP50),
      'ms',
      `p99 ${fmt(med(name, (f) => f.satP99))} ms; ${each(name, (f) => f.satP50)}`,
    );
    if (name !== threeNodes) {
      const p50 = med(name, (f) => f.pacedP50);
      const p99 = med(name, (f) => f.pacedP99);
      const n50 = `${each(name, (f) => f.pacedP50)}; sent at ${fmt(med(name, (f) => f.pacedAchieved))}/s`;
      const n99 = each(name, (f) => f.pacedP99);
      if (name === 'Ferry on PostgreSQL') {
        report.target(C, `paced ${PACED_PER_S}/s: start latency p50, ${name}`, p50, 'ms', '<=', 5, n50);
        report.target(C, `paced ${PACED_PER_S}/s: start latency p99, ${name}`, p99, 'ms', '<=', 10, n99);
      } else {
        report.context(C, `paced ${PACED_PER_S}/s: start latency p50, ${name}`, p50, 'ms', n50);
        report.context(C, `paced ${PACED_PER_S}/s: start latency p99, ${name}`, p99, 'ms', n99);
      }
    }
    const who = name === 'graphile-worker' ? 'worker process' : name === threeNodes ? 'servers (all nodes)' : 'server';
    const extra = [
      name === 'graphile-worker' ? null : `spawner ${fmt(med(name, (f) => f.spawnerCpu))} ms`,
      `reaped job processes ${fmt(med(name, (f) => f.jobTreeCpu))} ms${name === 'graphile-worker' ? '' : ' (supervisor, init, sh, date)'}`,
      name === 'Ferry on SQLite' ? null : `PostgreSQL backends of its database ${fmt(med(name, (f) => f.pgCpu))} ms`,
      name === threeNodes
        ? null
        : `paced: ${who} ${fmt(med(name, (f) => f.pacedCpu))} ms${name === 'Ferry on SQLite' ? '' : `, backends ${fmt(med(name, (f) => f.pacedPgCpu))} ms`}`,
      `the benchmark's producers ${fmt(med(name, (f) => f.producerCpu))} ms`,
    ].filter(Boolean);
    report.context(
      C,
      `CPU per job, saturated: ${who}, ${name}`,
      med(name, (f) => f.cpu),
      'ms',
      `${extra.join('; ')}; ${each(name, (f) => f.cpu)}`,
    );
    report.context(
      C,
      `CPU per job, saturated: the whole system, ${name}`,
      med(name, (f) => f.systemCpu),
      'ms',
      `${who}, ${name === 'graphile-worker' ? '' : 'spawner, '}job processes${name === 'Ferry on SQLite' ? '' : ', PostgreSQL backends'}; not the producers; ${each(name, (f) => f.systemCpu)}`,
    );
  }

  process.stderr.write(
    `\n${markdownTable(
      systems.filter((s) => runs.has(s)),
      med,
    )}\n`,
  );
  if (errors.length > 0) throw new Error(`peers benchmark: ${errors.length} run(s) failed:\n${errors.join('\n')}`);
}

function empty(): Figures {
  return {
    rate: Number.NaN,
    satP50: Number.NaN,
    satP99: Number.NaN,
    pacedP50: null,
    pacedP99: null,
    pacedAchieved: null,
    cpu: Number.NaN,
    pacedCpu: null,
    spawnerCpu: null,
    jobTreeCpu: Number.NaN,
    pgCpu: null,
    pacedPgCpu: null,
    producerCpu: Number.NaN,
    systemCpu: Number.NaN,
  };
}

function fromGraphile(r: GraphileRun): Figures {
  return {
    rate: r.saturated.ratePerS,
    satP50: percentile(r.saturated.latencies, 50),
    satP99: percentile(r.saturated.latencies, 99),
    pacedP50: percentile(r.paced.latencies, 50),
    pacedP99: percentile(r.paced.latencies, 99),
    pacedAchieved: r.paced.achievedPerS,
    cpu: r.saturated.workerCpuMs,
    pacedCpu: r.paced.workerCpuMs,
    spawnerCpu: null,
    jobTreeCpu: r.saturated.jobTreeCpuMs,
    pgCpu: r.saturated.pgCpuMs,
    pacedPgCpu: r.paced.pgCpuMs,
    producerCpu: r.saturated.producerCpuMs,
    systemCpu: r.saturated.workerCpuMs + r.saturated.jobTreeCpuMs + r.saturated.pgCpuMs,
  };
}

function fromFerry(r: FerryRun): Figures {
  return {
    rate: r.saturated.ratePerS,
    satP50: percentile(r.saturated.latencies, 50),
    satP99: percentile(r.saturated.latencies, 99),
    pacedP50: r.paced ? percentile(r.paced.latencies, 50) : null,
    pacedP99: r.paced ? percentile(r.paced.latencies, 99) : null,
    pacedAchieved: r.paced?.achievedPerS ?? null,
    cpu: r.saturated.serverCpuMs,
    pacedCpu: r.paced?.serverCpuMs ?? null,
    spawnerCpu: r.saturated.spawnerCpuMs,
    jobTreeCpu: r.saturated.jobTreeCpuMs,
    pgCpu: r.saturated.pgCpuMs,
    pacedPgCpu: r.paced?.pgCpuMs ?? null,
    producerCpu: r.saturated.producerCpuMs,
    systemCpu: r.saturated.serverCpuMs + r.saturated.spawnerCpuMs + r.saturated.jobTreeCpuMs + (r.saturated.pgCpuMs ?? 0),
  };
}

/** The issue's table, medians, for BENCHMARKS.md (written to stderr). */
function markdownTable(systems: readonly SystemName[], med: (name: SystemName | 'raw', pick: (f: Figures) => number | null) => number): string {
  const rows = [
    `| system | saturated (${JOBS} jobs, ${PRODUCERS} producers) | paced ${PACED_PER_S}/s: start latency p50 / p99 | CPU per job: server or worker | CPU per job: whole system (with PostgreSQL backends and job processes) |`,
    '|---|---|---|---|---|',
    `| raw spawn from Node, ${PRODUCERS} in flight | ${fmt(med('raw', (f) => f.rate))} /s | – | – | – |`,
  ];
  for (const s of systems) {
    const p50 = med(s, (f) => f.pacedP50);
    const paced = Number.isNaN(p50) ? '–' : `${fmt(p50)} ms / ${fmt(med(s, (f) => f.pacedP99))} ms`;
    rows.push(`| ${s} | ${fmt(med(s, (f) => f.rate))} /s | ${paced} | ${fmt(med(s, (f) => f.cpu))} ms | ${fmt(med(s, (f) => f.systemCpu))} ms |`);
  }
  return rows.join('\n');
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  return Math.abs(v) >= 100 ? String(Math.round(v)) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}
