/**
 * `npm run bench [-- case...]`: runs the benchmark cases (all, or the ones named), printing one
 * JSON line per figure and a table at the end. Cases: lifecycle, scale, log-capture, log-follow (100
 * clients following one job's 50 MB log), teardown,
 * container, cluster (1, 2 and 3 nodes over one PostgreSQL on 127.0.0.1:5432), history (an empty
 * store against one with 100,000 finished migrations), swarm (a one-step job on the swarm substrate
 * against a raw `docker service create --mode replicated-job`; scripts/setup-swarm.sh), peers (issue
 * 14: graphile-worker against Ferry on PostgreSQL, 1 and 3 nodes, and on SQLite, the same job,
 * saturated and paced 50/s; PostgreSQL on 127.0.0.1:5432). Results also go to
 * tmp/bench-latest.json for BENCHMARKS.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { clusterBench } from './cluster.ts';
import { containerBench } from './container.ts';
import { historyBench } from './history.ts';
import { lifecycleBench } from './lifecycle.ts';
import { logCaptureBench } from './log-capture.ts';
import { logFollowBench } from './log-follow.ts';
import { peersBench } from './peers.ts';
import { scaleBench } from './scale.ts';
import { swarmBench } from './swarm.ts';
import { Report, machine } from './support.ts';
import { teardownBench } from './teardown.ts';

const CASES: Record<string, (report: Report) => Promise<void>> = {
  lifecycle: lifecycleBench,
  scale: scaleBench,
  'log-capture': logCaptureBench,
  'log-follow': logFollowBench,
  teardown: teardownBench,
  container: containerBench,
  cluster: clusterBench,
  history: historyBench,
  swarm: swarmBench,
  peers: peersBench,
};

const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!(name in CASES)) {
    process.stderr.write(`unknown benchmark case ${name}; choose from ${Object.keys(CASES).join(', ')}\n`);
    process.exit(2);
  }
}
const names = wanted.length > 0 ? wanted : Object.keys(CASES);
const info = { date: new Date().toISOString(), command: `npm run bench${wanted.length ? ` -- ${wanted.join(' ')}` : ''}`, ...machine() };
process.stdout.write(`${JSON.stringify({ bench: 'machine', ...info })}\n`);

const report = new Report();
let failed = false;
for (const name of names) {
  const started = Date.now();
  process.stderr.write(`── ${name} ──\n`);
  try {
    await (CASES[name] as (r: Report) => Promise<void>)(report);
  } catch (err) {
    failed = true;
    process.stderr.write(`benchmark ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.stderr.write(`── ${name}: ${Math.round((Date.now() - started) / 1000)} s ──\n`);
}
process.stdout.write(`\n${report.table()}\n`);
mkdirSync('tmp', { recursive: true });
writeFileSync('tmp/bench-latest.json', `${JSON.stringify({ ...info, figures: report.figures }, null, 2)}\n`);
process.exit(failed ? 1 : 0);
