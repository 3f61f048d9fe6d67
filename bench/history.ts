/**
 * History (issue 11, target 3): does Ferry's cost grow with the migrations it has finished? The same
 * measurements on an empty store and on one seeded with 100,000 finished migrations (their
 * attempts, events and artifacts; bench/history-seed.ts writes them straight into the SQLite file),
 * three runs; every figure is the median of the three.
 *
 * Each run starts two `ferry serve` (bench/server.ts, as the lifecycle case does), one on an empty
 * store and one on a copy of the seeded store, and on each:
 * - fixtures: 5 held migrations (a step that exits 3) and one queued behind each of them, so that
 *   the held list has rows and every scheduling pass has queued work to decide on;
 * - lifecycle: 500 one-step migrations over 500 tenants, filed and approved by 32 clients, until
 *   all succeeded (the lifecycle case's load); the history is spread over these same tenants;
 * - latency, one request to each server in turn (the machine's other work weighs on both alike):
 *   p50 and p99 of 2,000 sequential `GET /v1/migrations?state=held` and
 *   `GET /v1/migrations/:id` (of the run's own migrations), and of 200 first pages of the
 *   default list and of the console's list (every state but held, newest first);
 * - in the store, timed in-process on the same database files, 2,000 times each: the reads a
 *   scheduling pass makes (unadopted tenants, the node's queue, the holders, the running peaks),
 *   and a page read from a cursor half a year back (the middle of the seeded history).
 *
 * `FERRY_BENCH_HISTORY_MIGRATIONS` and `FERRY_BENCH_HISTORY_COUNT` change the two sizes.
 */
import { closeSync, copyFileSync, fsyncSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIGRATION_STATES } from '../src/core/types.ts';
import { openSqliteStore } from '../src/store/open-store.ts';
import { listAllMigrations, tempDir } from '../test/support/harness.ts';
import { seedHistory } from './history-seed.ts';
import { BIG_CAPACITY, startBenchServer, type BenchServer } from './server.ts';
import { median, percentile, pool, sleep, wallMs, type Report } from './support.ts';

const HISTORY = Number(process.env.FERRY_BENCH_HISTORY_MIGRATIONS ?? 100_000);
const COUNT = Number(process.env.FERRY_BENCH_HISTORY_COUNT ?? 500);
const RUNS = 3;
const CONCURRENCY = 32;
const SAMPLES = 2000;
const PAGE_SAMPLES = 200;
const HELD = 5;
const ISSUE = 'github:acme/bench#11';
const FIXTURE_ISSUE = 'github:acme/bench#12';
const TENANT_PREFIX = 'life';
const CONSOLE_LIST = `state=${MIGRATION_STATES.filter((s) => s !== 'held').join(',')}&order=desc&limit=100`;

type Kind = 'empty' | 'seeded';
type Figures = Record<string, number>;

export async function historyBench(report: Report): Promise<void> {
  const c = 'history';
  const templateDir = mkdtempSync(join(tmpdir(), 'ferry-bench-history-'));
  try {
    const template = join(templateDir, 'ferry.db');
    const tenants = Array.from({ length: COUNT }, (_, i) => `${TENANT_PREFIX}-${String(i).padStart(4, '0')}`);
    const t0 = wallMs();
    // The refs name a data folder that is not the server's: nothing reads them, and they are never removed.
    const counts = await seedHistory(template, { migrations: HISTORY, tenants, node: hostname(), dataDir: templateDir });
    flush(template);
    report.context(
      c,
      `seeding ${HISTORY} finished migrations straight into SQLite`,
      wallMs() - t0,
      'ms',
      `${counts.attempts} attempts, ${counts.events} events, ${counts.artifacts} artifacts, ${counts.issues} issues`,
    );
    const runs: Record<Kind, Figures[]> = { empty: [], seeded: [] };
    for (let run = 1; run <= RUNS; run++) {
      const figures = await measurePair(template, run);
      for (const kind of ['empty', 'seeded'] as const) {
        process.stderr.write(`history run ${run} ${kind}: ${JSON.stringify(figures[kind])}\n`);
        runs[kind].push(figures[kind]);
      }
    }
    const med = (kind: Kind, name: string) => median(runs[kind].map((f) => f[name] as number));
    const each = (kind: Kind, name: string) => runs[kind].map((f) => Math.round((f[name] as number) * 100) / 100).join(', ');
    const ratio = (name: string) => med('seeded', name) / med('empty', name);
    const runsNote = (name: string) =>
      `empty ${med('empty', name).toFixed(2)} (runs ${each('empty', name)}), seeded ${med('seeded', name).toFixed(2)} (runs ${each('seeded', name)})`;

    report.target(c, `lifecycle rate, seeded / empty (${COUNT} migrations)`, ratio('rate'), 'x', '>=', 0.9, runsNote('rate'));
    report.target(c, 'GET /v1/migrations?state=held p99, seeded / empty', ratio('heldP99'), 'x', '<=', 1.1, runsNote('heldP99'));
    report.target(c, 'GET /v1/migrations/:id p99, seeded / empty', ratio('detailP99'), 'x', '<=', 1.1, runsNote('detailP99'));
    report.target(c, 'scheduler pass store reads p99, seeded / empty', ratio('passP99'), 'x', '<=', 1.1, runsNote('passP99'));
    const context: Array<[string, string, string]> = [
      ['rate', 'lifecycle rate', 'migrations/s'],
      ['heldP50', 'GET /v1/migrations?state=held p50', 'ms'],
      ['heldP99', 'GET /v1/migrations?state=held p99', 'ms'],
      ['detailP50', 'GET /v1/migrations/:id p50', 'ms'],
      ['detailP99', 'GET /v1/migrations/:id p99', 'ms'],
      ['passP50', 'scheduler pass store reads p50', 'ms'],
      ['passP99', 'scheduler pass store reads p99', 'ms'],
      ['listP50', 'GET /v1/migrations (first page, default) p50', 'ms'],
      ['listP99', 'GET /v1/migrations (first page, default) p99', 'ms'],
      ['consoleP50', "console's list (all states but held, newest first) p50", 'ms'],
      ['consoleP99', "console's list (all states but held, newest first) p99", 'ms'],
      ['deepP50', 'a page from a cursor half a year back, in the store, p50', 'ms'],
      ['deepP99', 'a page from a cursor half a year back, in the store, p99', 'ms'],
    ];
    for (const [key, name, unit] of context) {
      report.context(c, `${name}, empty store`, med('empty', key), unit, `runs ${each('empty', key)}`);
      report.context(c, `${name}, seeded store`, med('seeded', key), unit, `runs ${each('seeded', key)}; seeded / empty ${ratio(key).toFixed(2)}`);
    }
  } finally {
    rmSync(templateDir, { recursive: true, force: true });
  }
}

/**
 * One run: a server on an empty store and one on a copy of the seeded store, up together. The
 * lifecycle loads run one after the other (which goes first alternates by run); the latencies and
 * the scheduler pass are sampled in pairs, one request to each in turn, so that whatever else the
 * machine does at that moment weighs on both alike.
 */
async function measurePair(template: string, run: number): Promise<Record<Kind, Figures>> {
  const servers: Partial<Record<Kind, BenchServer>> = {};
  try {
    for (const kind of ['empty', 'seeded'] as const) {
      const dataDir = tempDir('ferry-bench-');
      if (kind === 'seeded') {
        copyFileSync(template, join(dataDir, 'ferry.db'));
        flush(join(dataDir, 'ferry.db'));
      }
      servers[kind] = await startBenchServer(BIG_CAPACITY, {}, dataDir);
    }
    const pair = { empty: servers.empty as BenchServer, seeded: servers.seeded as BenchServer };
    const kinds = run % 2 === 1 ? (['empty', 'seeded'] as const) : (['seeded', 'empty'] as const);
    const ids: Record<Kind, string[]> = { empty: [], seeded: [] };
    const rate: Record<Kind, number> = { empty: 0, seeded: 0 };
    for (const kind of kinds) {
      const s = pair[kind];
      const node = (await s.server.api('GET', '/v1/capacity')).body.node as string;
      if (node !== hostname()) throw new Error(`the server's node is ${node}, the history's ${hostname()}: start it without FERRY_NODE`);
      await fixtures(s);
      const tenants = await s.tenants(TENANT_PREFIX, COUNT, { cpu: '500m', memory: '32Mi' });
      ({ rate: rate[kind], ids: ids[kind] } = await lifecycle(s, tenants));
    }
    await sleep(5000); // let the last run's follow-up work (outcome writes, job watchers, collection) settle
    const held = await latency(
      pair,
      SAMPLES,
      () => '/v1/migrations?state=held',
      (body) => Array.isArray(body) && body.length === HELD,
    );
    const detail = await latency(
      pair,
      SAMPLES,
      (kind, i) => `/v1/migrations/${ids[kind][i % ids[kind].length]}`,
      (body) => (body as { state?: string }).state === 'succeeded',
    );
    const list = await latency(
      pair,
      PAGE_SAMPLES,
      () => '/v1/migrations',
      (body) => Array.isArray(body) && body.length > 0,
    );
    const consoleList = await latency(
      pair,
      PAGE_SAMPLES,
      () => `/v1/migrations?${CONSOLE_LIST}`,
      (body) => Array.isArray(body) && body.length > 0,
    );
    const { pass, deep } = await storeReads({ empty: join(pair.empty.dataDir, 'ferry.db'), seeded: join(pair.seeded.dataDir, 'ferry.db') }, hostname());
    const figures = (kind: Kind): Figures => ({
      rate: rate[kind],
      heldP50: percentile(held[kind], 50),
      heldP99: percentile(held[kind], 99),
      detailP50: percentile(detail[kind], 50),
      detailP99: percentile(detail[kind], 99),
      listP50: percentile(list[kind], 50),
      listP99: percentile(list[kind], 99),
      consoleP50: percentile(consoleList[kind], 50),
      consoleP99: percentile(consoleList[kind], 99),
      passP50: percentile(pass[kind], 50),
      passP99: percentile(pass[kind], 99),
      deepP50: percentile(deep[kind], 50),
      deepP99: percentile(deep[kind], 99),
    });
    return { empty: figures('empty'), seeded: figures('seeded') };
  } finally {
    for (const s of Object.values(servers)) await s.close();
  }
}

/**
 * Write the file's pages to disk now: half a gigabyte left to the kernel's writeback would compete
 * with the fsyncs of whichever lifecycle load runs first and slow it alone.
 */
function flush(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** HELD held migrations, each with one more queued behind it on its tenant (it waits for the holder). */
async function fixtures(s: BenchServer): Promise<void> {
  const tenants = await s.tenants('held', HELD, { cpu: '500m', memory: '32Mi' });
  const file = async (tenant: string, run: string[]) => {
    const filed = await s.server.api('POST', '/v1/migrations', {
      issue: FIXTURE_ISSUE,
      tenant,
      peak: { cpu: '1', memory: '64Mi' },
      snapshot: 'never',
      steps: [{ name: 'step', run }],
    });
    if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
    const approved = await s.server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
  };
  for (const t of tenants) await file(t, ['sh', '-c', 'exit 3']);
  for (let i = 0; ; i++) {
    if ((await listAllMigrations(s.server.api, 'state=held')).length === HELD) break;
    if (i > 300) throw new Error('the fixture migrations were not all held after 30 s');
    await sleep(100);
  }
  for (const t of tenants) await file(t, ['true']);
}

/** The lifecycle case's load: COUNT migrations filed and approved by CONCURRENCY clients; migrations per second until all succeeded. */
async function lifecycle(s: BenchServer, tenants: readonly string[]): Promise<{ rate: number; ids: string[] }> {
  const t0 = wallMs();
  const ids = await pool(tenants, CONCURRENCY, async (tenant) => {
    const filed = await s.server.api('POST', '/v1/migrations', {
      issue: ISSUE,
      tenant,
      peak: { cpu: '1', memory: '64Mi' },
      snapshot: 'never',
      steps: [{ name: 'stamp', run: ['sh', '-c', 'date +%s%N > "$FERRY_SCRATCH/started"'] }],
    });
    if (filed.status !== 201) throw new Error(`file: ${filed.status} ${JSON.stringify(filed.body)}`);
    const approved = await s.server.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${JSON.stringify(approved.body)}`);
    return filed.body.id as string;
  });
  const issue = `issue=${encodeURIComponent(ISSUE)}`;
  while ((await listAllMigrations(s.server.api, `${issue}&state=filed,approved,queued,running`)).length > 0) await sleep(100);
  const all = await listAllMigrations<{ state: string; updatedAt: string }>(s.server.api, issue);
  const failed = all.filter((m) => m.state !== 'succeeded');
  if (failed.length > 0) throw new Error(`${failed.length} migrations did not succeed, e.g. ${JSON.stringify(failed[0])}`);
  const wholeMs = Math.max(...all.map((m) => Date.parse(m.updatedAt))) - t0;
  return { rate: (COUNT / wholeMs) * 1000, ids };
}

/** `count` sequential GETs of `path(kind, i)` from each server in turn, each checked by `ok`; their times in ms. */
async function latency(
  pair: Record<Kind, BenchServer>,
  count: number,
  path: (kind: Kind, i: number) => string,
  ok: (body: unknown) => boolean,
): Promise<Record<Kind, number[]>> {
  const times: Record<Kind, number[]> = { empty: [], seeded: [] };
  for (let i = 0; i < count + 10; i++) {
    for (const kind of i % 2 === 0 ? (['empty', 'seeded'] as const) : (['seeded', 'empty'] as const)) {
      const t = wallMs();
      const r = await pair[kind].server.api('GET', path(kind, i));
      const ms = wallMs() - t;
      if (r.status !== 200 || !ok(r.body)) throw new Error(`GET ${path(kind, i)} (${kind} store): ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      if (i >= 10) times[kind].push(ms); // the first few warm up the connection and the statement cache
    }
  }
  return times;
}

/**
 * Timed in-process on each server's database file in turn: the store reads of one scheduling pass
 * with queued work (scheduler-loop.ts tick), and a page of 100 migrations from a cursor half a year
 * back (the middle of the seeded history; on the empty store, its first page), as the console's
 * and `ferry ls`'s later pages are read.
 */
async function storeReads(paths: Record<Kind, string>, node: string): Promise<Record<'pass' | 'deep', Record<Kind, number[]>>> {
  const stores = { empty: await openSqliteStore(paths.empty), seeded: await openSqliteStore(paths.seeded) };
  const after = { createdAt: new Date(Date.now() - 182 * 86_400_000).toISOString(), id: '' };
  try {
    const pass: Record<Kind, number[]> = { empty: [], seeded: [] };
    const deep: Record<Kind, number[]> = { empty: [], seeded: [] };
    for (let i = 0; i < SAMPLES + 10; i++) {
      for (const kind of i % 2 === 0 ? (['empty', 'seeded'] as const) : (['seeded', 'empty'] as const)) {
        const store = stores[kind];
        let t = performance.now();
        await store.listUnadoptedTenants(node);
        const queued = await store.listQueued(node);
        await store.listHolders();
        await store.runningPeaks(node);
        const passMs = performance.now() - t;
        if (queued.length !== HELD) throw new Error(`the scheduler's queue holds ${queued.length} migrations (${kind} store), not the ${HELD} fixtures`);
        t = performance.now();
        const page = await store.listMigrations({ after, order: 'asc', limit: 101 });
        const deepMs = performance.now() - t;
        if (page.length !== 101) throw new Error(`a page from half a year back holds ${page.length} migrations (${kind} store), not 101`);
        if (i >= 10) {
          pass[kind].push(passMs);
          deep[kind].push(deepMs);
        }
      }
    }
    return { pass, deep };
  } finally {
    await stores.empty.close();
    await stores.seeded.close();
  }
}
