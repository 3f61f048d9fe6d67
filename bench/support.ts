/**
 * Shared pieces of the benchmarks: the machine they ran on, a Ferry server as a child process,
 * /proc readings, percentiles, and the two outputs of every figure (a JSON line and a table row).
 *
 * Benchmarks measure; they never assert. A figure that misses its target is reported as such
 * (`meets: false`) and BENCHMARKS.md says what limits it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface Figure {
  /** Benchmark case: lifecycle, scale, log-capture, teardown, container. */
  readonly case: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** Target as text (`>= 100`, `< 10`), or null for context figures. */
  readonly target?: string | null;
  /** Whether the target is met; null when there is no target. */
  readonly meets?: boolean | null;
  readonly note?: string;
}

export class Report {
  readonly figures: Figure[] = [];

  add(f: Figure): void {
    const full = { target: null, meets: null, ...f };
    this.figures.push(full);
    process.stdout.write(
      `${JSON.stringify({ bench: full.case, figure: full.name, value: round(full.value), unit: full.unit, target: full.target, meets: full.meets, ...(full.note ? { note: full.note } : {}) })}\n`,
    );
  }

  /** A figure with a target `op bound`: meets is computed here. */
  target(c: string, name: string, value: number, unit: string, op: '>=' | '<=' | '<' | '==', bound: number, note?: string): void {
    const meets = op === '>=' ? value >= bound : op === '<=' ? value <= bound : op === '<' ? value < bound : value === bound;
    this.add({ case: c, name, value, unit, target: `${op} ${bound}`, meets, ...(note ? { note } : {}) });
  }

  context(c: string, name: string, value: number, unit: string, note?: string): void {
    this.add({ case: c, name, value, unit, ...(note ? { note } : {}) });
  }

  table(): string {
    const rows = this.figures.map((f) => [
      f.case,
      f.name,
      `${round(f.value)} ${f.unit}`,
      f.target ?? '',
      f.meets === null || f.meets === undefined ? '' : f.meets ? 'yes' : 'NO',
    ]);
    const head = ['case', 'figure', 'value', 'target', 'met'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
    return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
  }
}

export function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  const abs = Math.abs(v);
  return abs >= 100 ? Math.round(v) : abs >= 1 ? Math.round(v * 100) / 100 : Math.round(v * 10_000) / 10_000;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly tmpFilesystem: string;
}

export function machine(): Machine {
  let fs = 'unknown';
  try {
    fs = execFileSync('df', ['-T', '/tmp'], { encoding: 'utf8' }).trim().split('\n').at(-1)?.split(/\s+/)[1] ?? 'unknown';
  } catch {
    // no df: unknown
  }
  return {
    nproc: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    tmpFilesystem: fs,
  };
}

/** Clock ticks per second of /proc/<pid>/stat times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  /** Resident set size, bytes. */
  readonly rss: number;
  /** User + system CPU time so far, seconds. */
  readonly cpu: number;
}

export function procSample(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3; utime and stime are fields 14 and 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rss: rssKb * 1024, cpu: ticks / CLK_TCK };
  } catch {
    return null;
  }
}

/** Wall clock in milliseconds with sub-millisecond resolution (comparable with `date +%s%N`). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  });
  await Promise.all(workers);
  return out;
}

/** Processes whose command line mentions `needle` (leak counts). */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const pid of readdirNumeric('/proc')) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(needle)) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

function readdirNumeric(dir: string): number[] {
  return readdirSync(dir)
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}
