/**
 * Ferry's error catalogue. Every error a user can see carries a stable `code` and the HTTP status
 * it maps to (Fastify's FST_ERR_* catalogue is the model). A job's failure is not an error: it is a
 * value (`FailureCause`) stored on the attempt.
 */
export const ERRORS = {
  FERRY_BAD_REQUEST: 400,
  /** A JSON or YAML document nests deeper than the bound (64); refused before it is parsed. */
  FERRY_DOCUMENT_TOO_DEEP: 400,
  /** The request line or headers did not arrive in time (headersTimeout, requestTimeout). */
  FERRY_REQUEST_TIMEOUT: 408,
  /** A URL (or one of its parameters) is longer than the server accepts. */
  FERRY_URI_TOO_LONG: 414,
  /** The request headers are larger than the server accepts. */
  FERRY_HEADERS_TOO_LARGE: 431,
  /** This token already follows as many logs as it may (maxFollowersPerToken). */
  FERRY_TOO_MANY_FOLLOWERS: 429,
  FERRY_INVALID_REQUEST: 422,
  FERRY_INVALID_QUANTITY: 422,
  FERRY_REJECTED: 422,
  /** A `/ferry` command in an issue comment cannot be read; Ferry answers in the thread with what to write instead. */
  FERRY_UNKNOWN_COMMAND: 422,
  FERRY_MISSING_REASON: 422,
  FERRY_TOO_MANY_COMMANDS: 422,
  FERRY_REASON_TOO_LONG: 422,
  FERRY_UNAUTHENTICATED: 401,
  FERRY_FORBIDDEN: 403,
  /** A state change with the console's session cookie but without its CSRF token (X-Ferry-CSRF), or from a page of another origin. */
  FERRY_CSRF: 403,
  FERRY_NOT_FOUND: 404,
  FERRY_WRONG_STATE: 409,
  FERRY_CONFLICT: 409,
  FERRY_TENANT_BUSY: 409,
  FERRY_ISSUE_CLOSED: 409,
  FERRY_NO_WIPE: 409,
  FERRY_PAYLOAD_TOO_LARGE: 413,
  FERRY_UNSUPPORTED_MEDIA_TYPE: 415,
  FERRY_INTERNAL: 500,
  /** A tracker refused a comment for good (a 4xx other than 408/429, or an answer Ferry cannot use); the outbox gives it up. */
  FERRY_TRACKER_PERMANENT: 502,
  /** A tracker could not take a comment now (no answer, 5xx, 408, 429, a rate limit); the outbox tries again later. */
  FERRY_TRACKER_RETRYABLE: 503,
  FERRY_STORAGE_FULL: 503,
  /** The server is at a shared bound (all log followers in use); try again later. */
  FERRY_BUSY: 503,
  /** The container engine (Docker, or Podman's API service) did not answer at start; start it or point Ferry at its socket. */
  FERRY_ENGINE_UNAVAILABLE: 503,
  /** The process supervisor (native/ferry-supervise.c) is not built; `npm install` builds it with a C compiler. */
  FERRY_SUPERVISOR_NOT_BUILT: 503,
  /** `isolation: required`, and this host cannot confine jobs (Ferry not root, or no namespaces). */
  FERRY_CANNOT_CONFINE: 503,
  /** The database was migrated by a newer Ferry; run that Ferry, or a newer one. */
  FERRY_SCHEMA_NEWER: 503,
  /** A node's write carried a lease that is no longer its node's (another node took over): refused, never applied. */
  FERRY_FENCED: 409,
  /** Another live process already is this node (same name, same database), or SQLite already belongs to another node. */
  FERRY_NODE_TAKEN: 409,
  /** The node a request must reach (the tenant's, for its logs or a running job) does not answer. */
  FERRY_NODE_UNREACHABLE: 503,
} as const;
export type ErrorCode = keyof typeof ERRORS;

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FerryError';
    this.code = code;
    this.status = ERRORS[code];
    this.details = Object.freeze({ ...details });
  }
}

/** Turn any thrown value into an Error exactly once (graphile-worker's coerceError). */
export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : `non-error thrown: ${safeString(err)}`);
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
