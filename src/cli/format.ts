/** Plain-text rendering for people: tables and the verdict. `--json` bypasses all of it. */
import { formatQuantity } from '../core/quantity.ts';
import type { Verdict } from '../core/types.ts';

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function verdictTable(v: Verdict): string {
  const q = (d: string, n: number | null) => (n === null ? '-' : formatQuantity(d, n));
  const rows = v.dimensions.map((d) => [
    d.dimension,
    q(d.dimension, d.peak),
    q(d.dimension, d.steadyState),
    q(d.dimension, d.cap),
    q(d.dimension, d.capacity),
    d.ok ? 'pass' : 'FAIL',
  ]);
  const out = [table(['DIMENSION', 'PEAK', 'STEADY-STATE', 'CAP (2x)', 'NODE', 'RESULT'], rows)];
  if (v.reasons.length) out.push('', ...v.reasons.map((r) => `✗ ${r.code}: ${r.message}`));
  return out.join('\n');
}
