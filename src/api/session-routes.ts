/**
 * /v1/session: the console signs in with a token (POST), learns who it is (GET) and signs out
 * (DELETE). The rules are in src/api/session.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { validate } from '../core/request-schema.ts';
import type { Principal, TokenRegistry } from './auth.ts';
import type { RouteAccess } from './route-access.ts';
import { SESSION_COOKIE, assertSameOrigin, cookieValue, sessionCookie, type SessionStore } from './session.ts';

// A token is one printable word; anything else is refused before it is looked up, and never echoed.
const signInBody = z.strictObject({
  token: z
    .string()
    .min(1)
    .max(4096)
    .regex(/^[\x21-\x7e]+$/, 'is not a token (one word of printable characters)'),
});

function whoAmI(principal: Principal) {
  return { name: principal.name, role: principal.role, tenants: principal.tenants === null ? null : [...principal.tenants].sort() };
}

export function registerSessionRoutes(app: FastifyInstance, tokens: TokenRegistry, sessions: SessionStore, access: RouteAccess): void {
  const secure = (request: FastifyRequest) => request.protocol === 'https';

  app.post('/v1/session', async (request, reply) => {
    // Sign-in from another site's page would log the victim into the attacker's account (login CSRF).
    assertSameOrigin(request);
    const { token } = validate(signInBody, request.body, 'sign-in');
    const principal = tokens.authenticate(`Bearer ${token}`);
    const { id, session } = sessions.create(principal);
    reply.header('set-cookie', sessionCookie(id, secure(request))).header('cache-control', 'no-store');
    return { ...whoAmI(principal), csrf: session.csrf };
  });

  app.get('/v1/session', { onRequest: access.auth('filer') }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    // The CSRF token is given again to the page of a new tab of the same session: another site
    // cannot read this answer (no CORS), so it cannot learn the token this way.
    const sid = request.headers.authorization === undefined ? cookieValue(request.headers.cookie, SESSION_COOKIE) : null;
    const session = sid ? sessions.get(sid) : null;
    return { ...whoAmI(access.principalOf(request)), csrf: session?.csrf ?? null };
  });

  app.delete('/v1/session', { onRequest: access.auth('filer') }, async (request, reply) => {
    const sid = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (sid) sessions.delete(sid);
    reply.header('set-cookie', sessionCookie(null, secure(request))).code(204);
    return reply.send();
  });
}
