/**
 * A small HTTP client for the Ferry API, on node:http(s) so that every request has a connect
 * timeout and a whole-request timeout, and no library error can echo a header back.
 *
 * - A problem+json answer (an object with a `code`) becomes an ApiError with the server's detail.
 * - Any other error answer (a proxy's 502 page, a 404 from something that is not Ferry) becomes an
 *   ApiError whose message names the status, the URL and a short, single-line excerpt of the body.
 * - A connection that fails, or a server that does not answer in time, becomes an UnreachableError
 *   whose message names the URL and what to check.
 * The token is sent as given (see token-policy.ts for where it may go) and never appears in a message.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { checkToken, displayUrl, redact } from './token-policy.ts';

/** The server answered with an error status. `code` is the problem's code, or UNKNOWN. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: Record<string, unknown>;
  constructor(status: number, body: Record<string, unknown>, message?: string) {
    super(message ?? (typeof body.detail === 'string' ? body.detail : `HTTP ${status}`));
    this.name = 'ApiError';
    this.status = status;
    this.code = typeof body.code === 'string' ? body.code : 'UNKNOWN';
    this.body = body;
  }
}

/** No usable answer: refused, not found, timed out, cut off, or an answer that is not Ferry's. */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

export interface ClientOptions {
  /** Base URL of the server (http or https), without a trailing slash. */
  readonly url: string;
  /** Bearer token, or null to send none. */
  readonly token: string | null;
  /** Most milliseconds for a whole request: connect, send, and read the whole answer. */
  readonly timeoutMs: number;
  /** Most milliseconds to establish the TCP connection. Default: 10 s, or timeoutMs when smaller. */
  readonly connectTimeoutMs?: number;
}

/** Bodies read for an error message stop here; the rest is not needed for an excerpt. */
const ERROR_BODY_LIMIT = 64 * 1024;
/** A JSON answer larger than this is not one Ferry gives. */
const ANSWER_LIMIT = 256 * 1024 * 1024;
/** Characters of a foreign body shown in a message. */
const EXCERPT_CHARS = 160;

type Body = { json?: unknown; yaml?: string };

interface Call {
  readonly response: Promise<IncomingMessage>;
  /** End the exchange with `err`: a pending `response` rejects with it, a body being read throws it. */
  abort(err: Error): void;
  /** End the exchange quietly. */
  close(): void;
}

export class FerryClient {
  readonly url: string;
  private readonly base: URL;
  private readonly token: string | null;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;

  constructor(opts: ClientOptions) {
    // Checked again here, not only by the CLI: a header with a line break must never be attempted.
    if (opts.token) checkToken(opts.token, 'flag');
    this.url = opts.url;
    this.base = new URL(opts.url);
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs;
    this.connectTimeoutMs = Math.min(opts.connectTimeoutMs ?? 10_000, opts.timeoutMs);
  }

  /** One request whose whole answer is JSON; an error status throws ApiError. */
  /** `onHeaders` sees the answer's headers (e.g. the list's `x-ferry-next-cursor`). */
  async request<T>(method: string, path: string, body?: Body, onHeaders?: (headers: IncomingMessage['headers']) => void): Promise<T> {
    const call = this.open(method, path, body, true);
    const timer = setTimeout(() => call.abort(this.timedOut('answer')), this.timeoutMs);
    try {
      const res = await call.response;
      if (!ok(res)) throw await this.errorFrom(res, method, path);
      onHeaders?.(res.headers);
      const { data, truncated } = await readBody(res, ANSWER_LIMIT);
      if (truncated) {
        call.close();
        throw new UnreachableError(
          `the answer from ${this.shown(path)} is larger than ${ANSWER_LIMIT / 1024 ** 2} MiB, which no Ferry answer is; is --url (or FERRY_URL) the address of \`ferry serve\`?`,
        );
      }
      const text = data.toString('utf8');
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new UnreachableError(
          `${method} ${this.shown(path)} answered ${describeStatus(res)} with something that is not JSON (${this.excerptOf(res, text)}); is --url (or FERRY_URL) the address of \`ferry serve\`?`,
        );
      }
    } catch (err) {
      throw this.transportError(err);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Every item of a paged list (GET /v1/migrations, GET /v1/tenants): `pageSize` per request,
   * following `X-Ferry-Next-Cursor` until the page that has none.
   */
  async requestAllPages<T>(path: string, query: URLSearchParams = new URLSearchParams(), pageSize = 500): Promise<T[]> {
    const q = new URLSearchParams(query);
    q.set('limit', String(pageSize));
    const all: T[] = [];
    for (let page = 0; page < 10_000; page++) {
      let next: string | null = null;
      all.push(
        ...(await this.request<T[]>(
          'GET',
          `${path}?${q}`,
          undefined,
          (h) => (next = typeof h['x-ferry-next-cursor'] === 'string' ? h['x-ferry-next-cursor'] : null),
        )),
      );
      if (next === null) break;
      q.set('cursor', next);
    }
    return all;
  }

  /**
   * A streamed answer (a log), chunk by chunk into `sink`. The whole-request timeout does not apply
   * (a follower may wait for hours); the answer must start within the timeout, and whenever nothing
   * arrives for that long the server must still answer a health check, or the stream ends in an
   * UnreachableError. A quiet step therefore never cuts a follower; a stuck or vanished server does.
   */
  async stream(method: string, path: string, sink: (chunk: Buffer) => void): Promise<void> {
    const call = this.open(method, path, undefined, true);
    const start = setTimeout(() => call.abort(this.timedOut('answer')), this.timeoutMs);
    let res: IncomingMessage;
    try {
      res = await call.response;
      if (!ok(res)) throw await this.errorFrom(res, method, path);
    } catch (err) {
      throw this.transportError(err);
    } finally {
      clearTimeout(start);
    }
    const stopped = new UnreachableError(
      `Ferry at ${this.shown()} stopped answering: no output and no answer to a health check within ${seconds(this.timeoutMs)}; check that \`ferry serve\` is still running there, or raise --timeout`,
    );
    let probing = false;
    let done = false;
    let probeCall: Call | null = null;
    const probe = (): void => {
      probing = true;
      void this.alive((c) => (probeCall = c)).then((alive) => {
        probing = false;
        if (done) return;
        if (alive) idle.refresh();
        else call.abort(stopped);
      });
    };
    const idle = setTimeout(probe, this.timeoutMs);
    try {
      for await (const chunk of res) {
        // While a probe is out the timer has fired; refreshing it would start a second probe.
        if (!probing) idle.refresh();
        sink(chunk as Buffer);
      }
    } catch (err) {
      throw this.transportError(err);
    } finally {
      done = true;
      clearTimeout(idle);
      call.close();
      // A probe still out would otherwise hold the process open until its own timeout.
      (probeCall as Call | null)?.close();
    }
  }

  /** GET /healthz without a token: true when the server answers (below 500) within the timeout. */
  private async alive(onCall: (call: Call) => void): Promise<boolean> {
    const call = this.open('GET', '/healthz', undefined, false);
    onCall(call);
    const timer = setTimeout(() => call.abort(this.timedOut('answer')), this.timeoutMs);
    try {
      const res = await call.response;
      return (res.statusCode ?? 500) < 500;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      call.close();
    }
  }

  private open(method: string, path: string, body: Body | undefined, withToken: boolean): Call {
    const target = new URL(this.base.href.replace(/\/+$/, '') + path);
    const headers: OutgoingHttpHeaders = {};
    if (withToken && this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body?.yaml !== undefined) {
      headers['content-type'] = 'application/yaml';
      payload = body.yaml;
    } else if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    }
    if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
    // agent: false: one connection per request, closed after it, so nothing keeps the CLI alive.
    const req = (target.protocol === 'https:' ? https : http).request(target, { method, headers, agent: false });
    let res: IncomingMessage | null = null;
    const connect = setTimeout(() => req.destroy(this.timedOut('connect')), this.connectTimeoutMs);
    req.once('socket', (socket) => {
      if (!socket.connecting) clearTimeout(connect);
      else socket.once('connect', () => clearTimeout(connect));
    });
    req.once('close', () => clearTimeout(connect));
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', (r) => {
        res = r;
        // Errors of the body reach whoever reads it; this keeps an unread one from crashing the CLI.
        r.on('error', () => undefined);
        resolve(r);
      });
      req.on('error', (err) => reject(this.transportError(err)));
    });
    // The promise may be abandoned when a timer fires first; its rejection is handled there.
    response.catch(() => undefined);
    req.end(payload);
    return {
      response,
      abort: (err) => {
        res?.destroy(err);
        req.destroy(err);
      },
      close: () => {
        res?.destroy();
        req.destroy();
      },
    };
  }

  private async errorFrom(res: IncomingMessage, method: string, path: string): Promise<ApiError> {
    const { data, truncated } = await readBody(res, ERROR_BODY_LIMIT);
    if (truncated) res.destroy();
    const text = data.toString('utf8');
    const status = res.statusCode ?? 0;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (isProblem(parsed)) {
      const body = JSON.parse(redact(JSON.stringify(parsed), this.token)) as Record<string, unknown>;
      return new ApiError(status, body);
    }
    const excerpt = this.excerptOf(res, text);
    const where = `${method} ${this.shown(path)}`;
    let message: string;
    if (status === 404) {
      message = `${where} answered ${describeStatus(res)} (${excerpt}): what answers there is not a Ferry API, whose answers to errors are problem+json. Is \`ferry serve\` running there, and is --url (or FERRY_URL) right (like http://127.0.0.1:7070, without a path)?`;
    } else if (status >= 300 && status < 400) {
      message = `${where} answered ${describeStatus(res)}, a redirect, which Ferry never sends: point --url (or FERRY_URL) at the server itself`;
    } else {
      message = `${where} answered ${describeStatus(res)}: ${excerpt}`;
    }
    return new ApiError(status, { status, detail: message }, message);
  }

  private excerptOf(res: IncomingMessage, text: string): string {
    const type = String(res.headers['content-type'] ?? '');
    const shown = excerpt(text, { html: /html|xml/i.test(type) || /^\s*</.test(text), token: this.token });
    return shown ? `${type ? `${excerpt(type, { max: 60 })}: ` : ''}${shown}` : 'an empty body';
  }

  /** Turn a socket-level failure into a sentence; an error we made ourselves passes through. */
  private transportError(err: unknown): Error {
    if (err instanceof UnreachableError || err instanceof ApiError) return err;
    return new UnreachableError(describeConnectionFailure(err, this.shown()));
  }

  private timedOut(phase: 'connect' | 'answer'): UnreachableError {
    return new UnreachableError(
      phase === 'connect'
        ? `cannot reach Ferry at ${this.shown()}: no connection within ${seconds(this.connectTimeoutMs)}; is --url (or FERRY_URL) right, and is \`ferry serve\` running and reachable there?`
        : `Ferry at ${this.shown()} did not answer within ${seconds(this.timeoutMs)} (--timeout); check that \`ferry serve\` is running there and not stuck, that --url (or FERRY_URL) is right, or raise --timeout`,
    );
  }

  private shown(path = ''): string {
    return displayUrl(new URL(this.base.href.replace(/\/+$/, '') + path.split('?')[0]));
  }
}

/** A sentence for a connection that failed, naming the URL and what to check. Nothing of the request is in it. */
export function describeConnectionFailure(err: unknown, url: string): string {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : '';
  const check = 'is `ferry serve` running, and is --url (or FERRY_URL) right?';
  switch (code) {
    case 'ECONNREFUSED':
      return `cannot reach Ferry at ${url}: connection refused, nothing listens there; ${check}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `cannot reach Ferry at ${url}: the host name was not found (${code}); is --url (or FERRY_URL) right?`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return `cannot reach Ferry at ${url}: no route to it (${code}); is --url (or FERRY_URL) right?`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `the connection to Ferry at ${url} was closed before the answer was complete (${code}); ${check}`;
    default:
      if (/^(ERR_SSL|ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED)/.test(code)) {
        return `cannot reach Ferry at ${url}: the TLS handshake failed (${code}); check the certificate and that --url uses the right scheme`;
      }
      if (code === 'HPE_INVALID_CONSTANT' || code.startsWith('HPE_')) {
        return `cannot reach Ferry at ${url}: what answered does not speak HTTP (${code}); is --url (or FERRY_URL) right?`;
      }
      return `cannot reach Ferry at ${url}${code ? ` (${code})` : ''}; ${check}`;
  }
}

/**
 * A foreign body made fit for one line of a message: tags (for HTML) and terminal escapes out,
 * control and format characters out, white space collapsed, the token redacted, then cut to `max`.
 */
export function excerpt(text: string, opts: { html?: boolean; token?: string | null; max?: number } = {}): string {
  const max = opts.max ?? EXCERPT_CHARS;
  let t = text.length > ERROR_BODY_LIMIT ? text.slice(0, ERROR_BODY_LIMIT) : text;
  if (opts.html) t = t.replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ').replace(/<[^>]*>?/g, ' ');
  t = t
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g, ' ')
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, ' ')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  // Redact before cutting: a cut must not leave the start of a token behind.
  t = redact(t, opts.token ?? null);
  const chars = [...t];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : t;
}

function ok(res: IncomingMessage): boolean {
  const s = res.statusCode ?? 0;
  return s >= 200 && s < 300;
}

function isProblem(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { code?: unknown }).code === 'string';
}

function describeStatus(res: IncomingMessage): string {
  const reason = excerpt(res.statusMessage ?? '', { max: 40 });
  return `HTTP ${res.statusCode ?? '?'}${reason ? ` ${reason}` : ''}`;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The body, up to `limit` bytes; `truncated` when there was more (left unread). */
async function readBody(res: IncomingMessage, limit: number): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    const b = chunk as Buffer;
    if (size + b.length > limit) {
      chunks.push(b.subarray(0, limit - size));
      return { data: Buffer.concat(chunks), truncated: true };
    }
    chunks.push(b);
    size += b.length;
  }
  return { data: Buffer.concat(chunks), truncated: false };
}
