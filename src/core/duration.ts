import { FerryError } from './errors.ts';

const PART = /(\d+)(ms|s|m|h|d)/g;
const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const FACTOR: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A step may not be given more than 30 days. */
const MAX_MS = 30 * 86_400_000;

/** `30m`, `90s`, `1h30m`, `500ms` → milliseconds. A bare number is seconds. */
export function parseDuration(field: string, raw: string | number): number {
  const bad = (why: string): FerryError => new FerryError('FERRY_INVALID_REQUEST', `${field}: ${JSON.stringify(raw)} ${why}`);
  let ms: number;
  if (typeof raw === 'number') {
    if (!Number.isInteger(raw) || raw <= 0) throw bad('must be a positive whole number of seconds, or a duration like 30m');
    ms = raw * 1000;
  } else {
    const text = raw.trim();
    if (text.length > 32 || !WHOLE.test(text)) throw bad('is not a duration; write it like 90s, 30m or 1h30m');
    ms = 0;
    for (const [, amount, unit] of text.matchAll(PART)) ms += Number(amount) * (FACTOR[unit as string] as number);
    if (ms <= 0) throw bad('must be longer than zero');
  }
  if (ms > MAX_MS) throw bad('is longer than 30d');
  return ms;
}
