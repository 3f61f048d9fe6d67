/**
 * Console sessions: a browser signs in once with its token (POST /v1/session) and gets an
 * HttpOnly, SameSite=Strict cookie naming a random session id, plus a CSRF token in the answer's
 * body that the page keeps in the tab's sessionStorage. The token itself is never stored by the
 * page, never put in a URL, and never kept by the server (the session holds the principal).
 *
 * Sessions live in this process's memory: they end after `idleMs` without a request (default 12 h)
 * and all of them with the process, so a restart signs everyone out. That is on purpose: nothing
 * that authenticates is written to disk, and a token removed from the tokens file stops working at
 * the next restart at the latest.
 *
 * A cookie-authenticated request that changes state (anything but GET and HEAD) must carry the
 * session's CSRF token in `X-Ferry-CSRF` and, when the browser sends an `Origin`, an origin whose
 * host is the host the request was sent to. A bearer-token request needs neither: a browser never
 * adds an Authorization header by itself.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { FerryError } from '../core/errors.ts';
import type { Principal } from './auth.ts';

/** The session cookie's name. */
export const SESSION_COOKIE = 'ferry_session';
/** The header a cookie-authenticated state-changing request carries its CSRF token in. */
export const CSRF_HEADER = 'x-ferry-csrf';
/** Default idle lifetime of a session: 12 hours. */
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** Most sessions kept at once; past it the least recently used is dropped. */
const MAX_SESSIONS = 10_000;

export interface Session {
  readonly principal: Principal;
  readonly csrf: string;
  lastSeen: number;
}

export class SessionStore {
  // Keyed by the digest of the id, so that a heap dump or a timing probe of the map does not give the cookie.
  private readonly byDigest = new Map<string, Session>();
  private readonly idleMs: number;
  private readonly now: () => number;

  constructor(opts: { idleMs?: number; now?: () => number } = {}) {
    this.idleMs = opts.idleMs ?? SESSION_IDLE_MS;
    this.now = opts.now ?? Date.now;
  }

  /** A new session for `principal`: its cookie value and CSRF token. */
  create(principal: Principal): { id: string; session: Session } {
    this.sweep();
    if (this.byDigest.size >= MAX_SESSIONS) {
      const oldest = this.byDigest.keys().next().value;
      if (oldest !== undefined) this.byDigest.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const session: Session = { principal, csrf: randomBytes(32).toString('base64url'), lastSeen: this.now() };
    this.byDigest.set(idDigest(id), session);
    return { id, session };
  }

  /** The live session of cookie value `id`, touched; null when unknown or idle too long. */
  get(id: string): Session | null {
    const key = idDigest(id);
    const session = this.byDigest.get(key);
    if (!session) return null;
    if (this.now() - session.lastSeen > this.idleMs) {
      this.byDigest.delete(key);
      return null;
    }
    session.lastSeen = this.now();
    // Re-insert: the map's order is then least recently used first.
    this.byDigest.delete(key);
    this.byDigest.set(key, session);
    return session;
  }

  delete(id: string): void {
    this.byDigest.delete(idDigest(id));
  }

  get size(): number {
    return this.byDigest.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, s] of this.byDigest) if (now - s.lastSeen > this.idleMs) this.byDigest.delete(key);
  }
}

function idDigest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The Set-Cookie value that gives the browser session `id` (or, with null, removes it). */
export function sessionCookie(id: string | null, secure: boolean): string {
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (secure) attrs.push('Secure');
  return id === null ? `${SESSION_COOKIE}=; ${attrs.join('; ')}; Max-Age=0` : `${SESSION_COOKIE}=${id}; ${attrs.join('; ')}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses (403) a request that arrived with an `Origin` of another host than the one it was sent
 * to. Browsers send `Origin` on every cross-origin request and on same-origin POST/PUT/DELETE; a
 * missing one (curl, old clients) is accepted, the CSRF token being the main guard.
 */
export function assertSameOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let host: string | null = null;
  try {
    host = origin === 'null' ? null : new URL(origin).host;
  } catch {
    host = null;
  }
  if (host === null || host !== request.headers.host) {
    throw new FerryError(
      'FERRY_CSRF',
      `this request comes from a page of another origin (${origin.slice(0, 100)}); the console changes state only from its own pages`,
      { reason: 'origin' },
    );
  }
}

/** For a cookie-authenticated request: a state change needs the session's CSRF token and a same-origin (or no) Origin. */
export function assertCsrf(request: FastifyRequest, session: Session): void {
  if (SAFE_METHODS.has(request.method)) return;
  assertSameOrigin(request);
  const sent = request.headers[CSRF_HEADER];
  const given = typeof sent === 'string' ? Buffer.from(sent) : Buffer.alloc(0);
  const expected = Buffer.from(session.csrf);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new FerryError(
      'FERRY_CSRF',
      `a request signed in with the console's session cookie that changes state needs the session's CSRF token in the X-Ferry-CSRF header; sign in again if the page lost it`,
      { reason: 'csrf' },
    );
  }
}
