/**
 * Kubernetes quantity notation (`1500m`, `1.5`, `2Gi`, `512Mi`, `1G`, `1e3`) parsed to exact
 * integers: `cpu` in millicores, everything else (memory, storage, pids) in base units (bytes).
 * Arithmetic is done in bigint so that `1.5Gi` or `0.1` never goes through a float.
 */
import { FerryError } from './errors.ts';

const BINARY: Readonly<Record<string, bigint>> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
const DECIMAL: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d{1,3}|[numkMGTPE])?$/;
/** Hostile input guard: a quantity is never longer than this. */
const MAX_LENGTH = 40;

/** The unit a dimension is counted in: cpu in thousandths of a core, the rest in whole units. */
function unitFactor(dimension: string): bigint {
  return dimension === 'cpu' ? 1000n : 1n;
}

function unitName(dimension: string): string {
  return dimension === 'cpu' ? 'millicores' : dimension === 'memory' ? 'bytes' : 'units';
}

/** Parse one quantity of `dimension` to an exact, non-negative safe integer. Throws FERRY_INVALID_QUANTITY. */
export function parseQuantity(dimension: string, raw: string | number): number {
  // No trimming: Kubernetes refuses " 1" and "1 " too (YAML already trims its plain scalars).
  const text = typeof raw === 'number' ? numberToText(raw) : raw;
  const bad = (why: string): FerryError =>
    new FerryError('FERRY_INVALID_QUANTITY', `${dimension}: ${JSON.stringify(String(raw).slice(0, MAX_LENGTH))} ${why}`, {
      dimension,
    });
  if (text.length === 0 || text.length > MAX_LENGTH) throw bad('is not a quantity; write it like 1500m, 1.5, 2Gi or 512Mi');
  const match = QUANTITY.exec(text);
  if (!match) throw bad('is not a quantity; write it like 1500m, 1.5, 2Gi or 512Mi');
  const [, sign, number = '', suffix = ''] = match;
  if (sign === '-') throw bad('is negative; quantities must be zero or more');

  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt((whole || '0') + fraction) * unitFactor(dimension);
  let denominator = 10n ** BigInt(fraction.length);
  if (suffix in BINARY) {
    numerator *= BINARY[suffix] as bigint;
  } else {
    const exponent = suffix.startsWith('e') || suffix.startsWith('E') ? Number(suffix.slice(1)) : (DECIMAL[suffix] as number);
    if (exponent >= 0) numerator *= 10n ** BigInt(exponent);
    else denominator *= 10n ** BigInt(-exponent);
  }
  if (numerator % denominator !== 0n) {
    throw bad(`is not a whole number of ${unitName(dimension)}${dimension === 'cpu' ? ' (the smallest cpu unit is 1m)' : ''}`);
  }
  const value = numerator / denominator;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('is too large');
  return Number(value);
}

function numberToText(n: number): string {
  if (!Number.isFinite(n)) return 'not-a-number';
  // Number#toString gives `1e+21` style for huge values, which the grammar accepts.
  return String(n).replace('e+', 'e');
}

/** Human form of a quantity: `1500m`, `2`, `3Gi`, `1536Mi`, `1000`. */
export function formatQuantity(dimension: string, value: number): string {
  if (dimension === 'cpu') return value % 1000 === 0 ? String(value / 1000) : `${value}m`;
  if (dimension === 'memory' || dimension.endsWith('storage')) {
    for (const [suffix, size] of Object.entries(BINARY).reverse()) {
      const s = Number(size);
      if (value >= s && value % s === 0) return `${value / s}${suffix}`;
    }
  }
  return String(value);
}
