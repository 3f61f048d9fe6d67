/**
 * Writing comments back to the trackers: one small interface, three implementations.
 *
 * Clients never retry on their own (a comment posted twice is visible to people); they classify
 * failures so the caller can: a network error, a 5xx, a 408 or a 429 (and GitHub's rate-limit
 * 403) is retryable, any other 4xx is permanent.
 */
import { Octokit } from '@octokit/rest';
import { z } from 'zod';
import { FerryError, type ErrorCode } from '../core/errors.ts';
import { parseIssueRef, type IssueRef, type TrackerKind } from '../core/issue-ref.ts';

export interface TrackerClient {
  readonly tracker: TrackerKind;
  /** Post a comment on the issue (a normalised ref of this client's tracker). */
  createComment(issue: string, body: string): Promise<{ readonly id: string }>;
  /** Replace the body of a comment Ferry posted earlier. */
  updateComment(issue: string, commentId: string, body: string): Promise<void>;
}

export type TrackerErrorCode = Extract<ErrorCode, 'FERRY_TRACKER_RETRYABLE' | 'FERRY_TRACKER_PERMANENT'>;

/**
 * A tracker call that failed. `status` is the catalogue's (502 permanent, 503 retryable), as for
 * every FerryError; `trackerStatus` is what the tracker answered, `null` when no response came.
 */
export class TrackerError extends FerryError {
  declare readonly code: TrackerErrorCode;
  readonly retryable: boolean;
  readonly tracker: TrackerKind;
  readonly trackerStatus: number | null;
  /** From `Retry-After` (seconds or a date), when the tracker sent one. */
  readonly retryAfterMs: number | null;
  readonly method: string;
  readonly path: string;

  constructor(
    init: { tracker: TrackerKind; retryable: boolean; status: number | null; method: string; path: string; retryAfterMs?: number | null; message: string },
    options?: { cause?: unknown },
  ) {
    super(
      init.retryable ? 'FERRY_TRACKER_RETRYABLE' : 'FERRY_TRACKER_PERMANENT',
      init.message,
      { tracker: init.tracker, trackerStatus: init.status, method: init.method, path: init.path, retryAfterMs: init.retryAfterMs ?? null },
      options,
    );
    this.name = 'TrackerError';
    this.retryable = init.retryable;
    this.tracker = init.tracker;
    this.trackerStatus = init.status;
    this.retryAfterMs = init.retryAfterMs ?? null;
    this.method = init.method;
    this.path = init.path;
  }
}

/** Retryable: the tracker may accept the same call later. */
function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export interface TrackerClientOptions {
  /** API token of Ferry's bot user. */
  readonly token: string;
  /**
   * GitHub: the REST API root (default `https://api.github.com`; GitHub Enterprise:
   * `https://HOST/api/v3`). Gitea/Forgejo and GitLab: the instance root (required), to which
   * `/api/v1` or `/api/v4` is appended.
   */
  readonly baseUrl?: string | undefined;
  /** Per-request timeout in ms. Default 15000. */
  readonly timeoutMs?: number | undefined;
  /** For tests and proxies; default: the global fetch. */
  readonly fetch?: typeof fetch | undefined;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const USER_AGENT = 'ferry';

export function createTrackerClient(tracker: TrackerKind, options: TrackerClientOptions): TrackerClient {
  switch (tracker) {
    case 'github':
      return createGitHubClient(options);
    case 'gitea':
      return createGiteaClient({ ...options, baseUrl: required(options.baseUrl, 'gitea') });
    case 'gitlab':
      return createGitLabClient({ ...options, baseUrl: required(options.baseUrl, 'gitlab') });
  }
}

function required(baseUrl: string | undefined, tracker: TrackerKind): string {
  if (baseUrl === undefined || baseUrl.length === 0) throw new TypeError(`the ${tracker} client needs a baseUrl: the address of the ${tracker} instance`);
  return baseUrl;
}

// ---------------------------------------------------------------- GitHub

function createGitHubClient(options: TrackerClientOptions): TrackerClient {
  const silent = (): void => undefined;
  const octokit = new Octokit({
    auth: options.token,
    baseUrl: (options.baseUrl ?? 'https://api.github.com').replace(/\/+$/, ''),
    userAgent: USER_AGENT,
    // Failures are returned to the caller as TrackerErrors; nothing is logged behind its back.
    log: { debug: silent, info: silent, warn: silent, error: silent },
    request: options.fetch === undefined ? {} : { fetch: options.fetch },
  });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  return {
    tracker: 'github',
    async createComment(issue, body) {
      const { owner, repo, number } = ownerRepo(issue, 'github');
      const path = `/repos/${owner}/${repo}/issues/${number}/comments`;
      try {
        const response = await octokit.rest.issues.createComment({
          owner,
          repo,
          issue_number: number,
          body,
          request: { signal: AbortSignal.timeout(timeoutMs) },
        });
        return { id: String(response.data.id) };
      } catch (err) {
        throw fromOctokit(err, 'POST', path);
      }
    },
    async updateComment(issue, commentId, body) {
      const { owner, repo } = ownerRepo(issue, 'github');
      const path = `/repos/${owner}/${repo}/issues/comments/${commentId}`;
      try {
        await octokit.rest.issues.updateComment({
          owner,
          repo,
          comment_id: numericId(commentId, 'github'),
          body,
          request: { signal: AbortSignal.timeout(timeoutMs) },
        });
      } catch (err) {
        throw fromOctokit(err, 'PATCH', path);
      }
    },
  };
}

function fromOctokit(err: unknown, method: string, path: string): TrackerError {
  if (err instanceof TrackerError) return err;
  const e = err as { status?: unknown; response?: { headers?: Record<string, string | number | undefined> }; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  // @octokit/request reports network failures and timeouts as status 500 without a response.
  if (e.response === undefined || typeof e.status !== 'number') {
    return new TrackerError(
      { tracker: 'github', retryable: true, status: null, method, path, message: `GitHub could not be reached: ${message}` },
      { cause: err },
    );
  }
  const headers = e.response.headers ?? {};
  const status = e.status;
  // GitHub answers rate limits with 403 as well as 429; those pass with time.
  const rateLimited = status === 403 && (String(headers['x-ratelimit-remaining']) === '0' || headers['retry-after'] !== undefined);
  return new TrackerError(
    {
      tracker: 'github',
      retryable: isRetryableStatus(status) || rateLimited,
      status,
      method,
      path,
      retryAfterMs: retryAfter(headers['retry-after'] === undefined ? null : String(headers['retry-after'])),
      message: `GitHub answered ${status} to ${method} ${path}: ${message}`,
    },
    { cause: err },
  );
}

// ---------------------------------------------------------------- Gitea / Forgejo

const created = z.object({ id: z.number().int().positive() });

function createGiteaClient(options: TrackerClientOptions & { readonly baseUrl: string }): TrackerClient {
  const http = jsonHttp('gitea', `${options.baseUrl.replace(/\/+$/, '')}/api/v1`, { Authorization: `token ${options.token}` }, options);
  return {
    tracker: 'gitea',
    async createComment(issue, body) {
      const { owner, repo, number } = ownerRepo(issue, 'gitea');
      const path = `/repos/${enc(owner)}/${enc(repo)}/issues/${number}/comments`;
      return { id: String(parseCreated(await http('POST', path, { body }), 'gitea', path)) };
    },
    async updateComment(issue, commentId, body) {
      const { owner, repo } = ownerRepo(issue, 'gitea');
      await http('PATCH', `/repos/${enc(owner)}/${enc(repo)}/issues/comments/${numericId(commentId, 'gitea')}`, { body });
    },
  };
}

// ---------------------------------------------------------------- GitLab

function createGitLabClient(options: TrackerClientOptions & { readonly baseUrl: string }): TrackerClient {
  const http = jsonHttp('gitlab', `${options.baseUrl.replace(/\/+$/, '')}/api/v4`, { 'PRIVATE-TOKEN': options.token }, options);
  return {
    tracker: 'gitlab',
    async createComment(issue, body) {
      const ref = refOf(issue, 'gitlab');
      const path = `/projects/${enc(ref.repo)}/issues/${ref.number}/notes`;
      return { id: String(parseCreated(await http('POST', path, { body }), 'gitlab', path)) };
    },
    async updateComment(issue, commentId, body) {
      const ref = refOf(issue, 'gitlab');
      await http('PUT', `/projects/${enc(ref.repo)}/issues/${ref.number}/notes/${numericId(commentId, 'gitlab')}`, { body });
    },
  };
}

// ---------------------------------------------------------------- shared

type Http = (method: string, path: string, body: unknown) => Promise<unknown>;

function jsonHttp(tracker: TrackerKind, root: string, auth: Record<string, string>, options: TrackerClientOptions): Http {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return async (method, path, body) => {
    let response: Response;
    try {
      response = await doFetch(`${root}${path}`, {
        method,
        headers: { ...auth, 'Content-Type': 'application/json', Accept: 'application/json', 'User-Agent': USER_AGENT },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      throw new TrackerError(
        { tracker, retryable: true, status: null, method, path, message: `${tracker} could not be reached (${method} ${path}): ${describe(err)}` },
        { cause: err },
      );
    }
    const text = await response.text().catch(() => '');
    if (!response.ok) {
      throw new TrackerError({
        tracker,
        retryable: isRetryableStatus(response.status),
        status: response.status,
        method,
        path,
        retryAfterMs: retryAfter(response.headers.get('retry-after')),
        message: `${tracker} answered ${response.status} to ${method} ${path}: ${errorText(text)}`,
      });
    }
    if (text.length === 0) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new TrackerError(
        { tracker, retryable: false, status: response.status, method, path, message: `${tracker} answered ${method} ${path} with a body that is not JSON` },
        { cause: err },
      );
    }
  };
}

function parseCreated(data: unknown, tracker: TrackerKind, path: string): number {
  const result = created.safeParse(data);
  if (!result.success) {
    // The comment may exist; retrying could post it twice, so this is not retryable.
    throw new TrackerError({
      tracker,
      retryable: false,
      status: null,
      method: 'POST',
      path,
      message: `${tracker} answered POST ${path} without a comment id; the comment may exist`,
    });
  }
  return result.data.id;
}

function refOf(issue: string, tracker: TrackerKind): IssueRef {
  let ref: IssueRef;
  try {
    ref = parseIssueRef(issue);
  } catch (err) {
    throw badRef(tracker, `${JSON.stringify(issue)} is not a normalised issue ref`, err);
  }
  if (ref.tracker !== tracker) throw badRef(tracker, `${issue} belongs to ${ref.tracker}, not to this ${tracker} client`);
  return ref;
}

/** An issue ref this client cannot address: a permanent failure, before any request is made. */
function badRef(tracker: TrackerKind, message: string, cause?: unknown): TrackerError {
  return new TrackerError({ tracker, retryable: false, status: null, method: '', path: '', message }, cause === undefined ? undefined : { cause });
}

function ownerRepo(issue: string, tracker: TrackerKind): { owner: string; repo: string; number: number } {
  const ref = refOf(issue, tracker);
  const parts = ref.repo.split('/');
  if (parts.length !== 2) throw badRef(tracker, `${issue}: ${tracker} repositories are owner/repo, not nested paths`);
  return { owner: parts[0] as string, repo: parts[1] as string, number: ref.number };
}

function numericId(id: string, tracker: TrackerKind): number {
  if (!/^[1-9]\d{0,15}$/.test(id)) {
    throw new TrackerError({
      tracker,
      retryable: false,
      status: null,
      method: '',
      path: '',
      message: `comment id ${JSON.stringify(id.slice(0, 40))} is not a ${tracker} comment id`,
    });
  }
  return Number(id);
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function retryAfter(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function errorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
    const message = parsed.message ?? parsed.error;
    if (message !== undefined) return (typeof message === 'string' ? message : JSON.stringify(message)).slice(0, 300);
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 300) || '(no body)';
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}
