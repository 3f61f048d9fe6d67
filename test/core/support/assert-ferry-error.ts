import assert from 'node:assert/strict';
import { FerryError, type ErrorCode } from '../../../src/core/errors.ts';

/** Run `fn`, assert it throws a FerryError with `code`, and hand the error back for closer checks. */
export function assertFerryError(fn: () => unknown, code: ErrorCode, message?: RegExp): FerryError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown !== undefined, `expected a FerryError ${code}, but nothing was thrown`);
  assert.ok(thrown instanceof FerryError, `expected a FerryError ${code}, got ${String(thrown)}`);
  assert.equal(thrown.code, code, `expected ${code}, got ${thrown.code}: ${thrown.message}`);
  if (message) assert.match(thrown.message, message);
  return thrown;
}
