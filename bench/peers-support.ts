/**
 * Pieces the peers case (bench/peers.ts) shares between its systems: fresh PostgreSQL databases, the
 * CPU time of a process, of the children it reaped and of one database's backends, the open-loop
 * paced schedule, and the job's own start stamp.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { postgresUrl } from '../test/support/postgres.ts';
import { CLK_TCK, sleep, wallMs } from './support.ts';

/** The job, in every system: `sh -c` with this script, FILE replaced by where it writes its start. */
export function stampScript(file: string): string {
  return `date +%s%N > ${file}`;
}

/** A fresh database `<prefix>_<random>` on the local PostgreSQL, and how to drop it. */
export async function createDatabase(prefix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await maintenance(`CREATE DATABASE ${name}`);
  const drop = async () => {
    await maintenance(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  };
  return { name, url: postgresUrl(name), drop };
}

export async function maintenance<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: postgresUrl('postgres'), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** CPU seconds of a process: its own (user + system), and that of the children it waited for. */
export interface ProcCpu {
  readonly own: number;
  readonly reaped: number;
}

export function procCpu(pid: number): ProcCpu | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14..17.
    return { own: (Number(f[11]) + Number(f[12])) / CLK_TCK, reaped: (Number(f[13]) + Number(f[14])) / CLK_TCK };
  } catch {
    return null;
  }
}

/** Pids of the children of `pid` whose command name is `comm` (the server's spawner). */
export function childrenNamed(pid: number, comm: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && name === comm) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * CPU seconds of the PostgreSQL backends connected to database `name` (pid → seconds), read from
 * /proc (PostgreSQL runs on this machine). Shared processes (WAL writer, checkpointer) are not
 * counted: they serve every database, and other work uses this server at the same time.
 */
export async function backendsCpu(name: string): Promise<Map<number, number>> {
  const rows = await maintenance<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    const c = procCpu(pid);
    if (c) out.set(pid, c.own);
  }
  return out;
}

/** CPU seconds the backends spent between two readings; a backend that started in between counts from zero (one that ended is missed). */
export function backendsCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, cpu] of after) sum += cpu - (before.get(pid) ?? 0);
  return sum;
}

/**
 * Open loop at `perSecond`: `send(i)` is called at t0 + i / perSecond whether or not the earlier
 * ones have answered (a producer that waited would slow down with the system it measures). Returns
 * the wall-clock time each was actually sent and the rate achieved.
 */
export async function paced(count: number, perSecond: number, send: (i: number) => Promise<void>): Promise<{ sent: number[]; achievedPerS: number }> {
  const sent: number[] = new Array(count);
  const pending: Array<Promise<void>> = [];
  const t0 = wallMs() + 20;
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / perSecond;
    const wait = due - wallMs();
    if (wait > 0) await sleep(wait);
    sent[i] = wallMs();
    pending.push(send(i));
  }
  const spanMs = (sent[count - 1] as number) - (sent[0] as number);
  const results = await Promise.allSettled(pending);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { sent, achievedPerS: count > 1 ? ((count - 1) * 1000) / spanMs : Number.NaN };
}

/** The job's own start time (ms since the epoch) from its stamp file; null until written. */
export function readStamp(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
  if (!/^\d{19}$/.test(text)) return null; // opened, not yet written
  return Number(BigInt(text) / 1000n) / 1000;
}

export function requireStamp(path: string, what: string): number {
  const at = readStamp(path);
  if (at === null) throw new Error(`${what} left no start stamp at ${path}`);
  return at;
}
