/**
 * Who may call a route and what a token may see. Every route but /healthz, /metrics, the console's
 * files and the webhooks authenticates a bearer token, or the console's session cookie (with its
 * CSRF rules, src/api/session.ts), and needs a role (src/core/roles.ts). A token limited to
 * tenants sees nothing of the others: what it may not see answers exactly as what does not exist
 * (404), so that it cannot learn which tenants or migrations there are.
 */
import type { FastifyRequest } from 'fastify';
import { FerryError } from '../core/errors.ts';
import { parseMigrationRequest } from '../core/request-schema.ts';
import type { Role } from '../core/roles.ts';
import type { Actor, Runner } from '../runner/runner.ts';
import type { MigrationRecord } from '../store/records.ts';
import { inScope, requireRole, type Principal, type TokenRegistry } from './auth.ts';
import { SESSION_COOKIE, assertCsrf, cookieValue, type SessionStore } from './session.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token's holder, set by the route's `auth` hook. */
    principal?: Principal;
  }
}

export interface RouteAccess {
  /**
   * An onRequest hook: the request must carry a known token of `role` or above, or the cookie of a
   * console session of such a token (then a state change also needs the CSRF header and same origin).
   */
  auth(role: Role): (request: FastifyRequest) => Promise<void>;
  /** Who did it, as recorded on the migration's events. */
  actor(request: FastifyRequest): Actor;
  /** The authenticated principal; a route without an `auth` hook has none (401). */
  principalOf(request: FastifyRequest): Principal;
  /** The 404 for a tenant that does not exist or that the token may not see. */
  noTenant(id: string): FerryError;
  /** Migration `id`, if it exists and the token may see it; else a 404. */
  visibleMigration(request: FastifyRequest, id: string): Promise<MigrationRecord>;
  /** A limited token files and checks only for its tenants. The document is read (and refused when invalid) before its tenant is checked. */
  checkDocumentScope(request: FastifyRequest): void;
}

export function routeAccess(runner: Runner, tokens: TokenRegistry, sessions: SessionStore): RouteAccess {
  const principalOf = (request: FastifyRequest): Principal => {
    if (!request.principal) throw new FerryError('FERRY_UNAUTHENTICATED', 'this endpoint needs a token: send Authorization: Bearer <token>');
    return request.principal;
  };
  // A bearer token wins over a cookie: the CLI and scripts never depend on a browser's session.
  const authenticate = (request: FastifyRequest): Principal => {
    const sid = request.headers.authorization === undefined ? cookieValue(request.headers.cookie, SESSION_COOKIE) : null;
    if (sid === null || sid === '') return tokens.authenticate(request.headers.authorization);
    const session = sessions.get(sid);
    if (!session)
      throw new FerryError(
        'FERRY_UNAUTHENTICATED',
        'the console session has ended (12 hours idle, signed out, or the server restarted); sign in again with your token',
      );
    assertCsrf(request, session);
    return session.principal;
  };
  return {
    auth: (role) => async (request) => {
      const principal = authenticate(request);
      requireRole(principal, role);
      request.principal = principal;
    },
    actor: (request) => ({ name: request.principal?.name ?? 'unknown' }),
    principalOf,
    noTenant: (id) => new FerryError('FERRY_NOT_FOUND', `no tenant ${id}; register it with PUT /v1/tenants/${id}`),
    visibleMigration: async (request, id) => {
      const m = await runner.store.getMigration(id);
      if (!m || !inScope(principalOf(request), m.tenant)) throw new FerryError('FERRY_NOT_FOUND', `no migration ${id}; list them with ferry ls`, { id });
      return m;
    },
    checkDocumentScope: (request) => {
      const principal = principalOf(request);
      if (principal.tenants === null) return;
      const { tenant } = parseMigrationRequest(request.body, runner.issueDefaults);
      if (!inScope(principal, tenant)) {
        throw new FerryError(
          'FERRY_NOT_FOUND',
          `no tenant ${tenant} that ${principal.name} may file for; this token is limited to ${[...principal.tenants].join(', ')}`,
        );
      }
    },
  };
}
