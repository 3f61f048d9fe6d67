/**
 * The shape of a migration id: `m-<time>-<random>`, the creation time in ms in base 36 and 8
 * lower-case hex digits, e.g. `m-lx3k9a-7f2c01ab`. The id sorts roughly by creation time and says
 * nothing about the tenant. The core takes the random part as an argument (it draws no randomness
 * itself); the runner passes 4 random bytes in hex.
 */
import { FerryError } from './errors.ts';

/** Every migration id matches this; anything else names no migration. */
export const MIGRATION_ID_PATTERN = /^m-[a-z0-9]{1,12}-[a-f0-9]{8}$/;

/** An id as shown in messages that say what an id looks like. */
export const MIGRATION_ID_EXAMPLE = 'm-lx3k9a-7f2c01ab';

const RANDOM_HEX = /^[a-f0-9]{8}$/;

/** A new migration id for the time `nowMs` (ms since the epoch) and 8 random lower-case hex digits. */
export function newMigrationIdText(nowMs: number, randomHex: string): string {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) {
    throw new FerryError('FERRY_INTERNAL', `a migration id needs a time in whole ms since the epoch, not ${String(nowMs)}; pass Date.now()`);
  }
  if (!RANDOM_HEX.test(randomHex)) {
    throw new FerryError(
      'FERRY_INTERNAL',
      `a migration id needs 8 lower-case hex digits of randomness, not ${JSON.stringify(randomHex.slice(0, 40))}; pass randomBytes(4).toString('hex')`,
    );
  }
  return `m-${nowMs.toString(36)}-${randomHex}`;
}
