/** Assertions shared by the API tests: what every error answer must look like. */
import assert from 'node:assert/strict';

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers;
}

/**
 * `res` is an `application/problem+json` answer with `status`, a stable FERRY_* `code` (exactly
 * `code` when given), a `detail` sentence, and no stack trace or source path anywhere in it.
 */
export function assertProblem(res: ApiResponse, status: number, code?: string): Record<string, unknown> {
  const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, 'errors are application/problem+json');
  assert.ok(res.body !== null && typeof res.body === 'object', `a problem body is a JSON object: ${text}`);
  const body = res.body as Record<string, unknown>;
  assert.equal(typeof body.code, 'string');
  assert.match(body.code as string, /^FERRY_[A-Z_]+$/);
  if (code !== undefined) assert.equal(body.code, code, text);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, 'string');
  assert.ok((body.detail as string).trim().length >= 10, `detail is a sentence: ${JSON.stringify(body.detail)}`);
  assertNoInternals(text);
  return body;
}

/** No stack frames, no source file paths, no driver internals leak to a client. */
export function assertNoInternals(text: string): void {
  assert.doesNotMatch(text, /\bat [\w.<>]+ \(|\n\s+at |\bat (?:async )?(?:file:\/\/|\/)/, `no stack frames: ${text}`);
  assert.doesNotMatch(text, /\/src\/|\bsrc\/[\w/-]+\.ts|node_modules|\.ts:\d+/, `no source paths: ${text}`);
}
