/**
 * /v1/migrations: check and file a request (filer), list and read migrations (filer), approve,
 * cancel and act on one (operator). The log of an attempt is in src/api/log-routes.ts.
 *
 * A migration's view names its tenant's node (`node`), and each attempt the node that ran it. A
 * cancel of a running migration whose attempt runs on another node is forwarded to that node
 * (src/api/node-forward.ts); any other cancel is made here.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import { TENANT_ID, validate } from '../core/request-schema.ts';
import { MIGRATION_STATES, RECOVERY_ACTIONS, type MigrationState } from '../core/types.ts';
import { RejectedError, type Runner } from '../runner/runner.ts';
import { inScope } from './auth.ts';
import { forwardToNode } from './node-forward.ts';
import { announceNextPage, decodeCursor, encodeCursor, pageFields, pageLimit } from './paging.ts';
import { issueParam, migrationParam, queryParams } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';
import { migrationDetail, migrationSummary, tenantNodes } from './views.ts';

const actionBody = z.strictObject({ action: z.enum(RECOVERY_ACTIONS), reason: z.string().max(4000) });
const cancelBody = z.strictObject({ reason: z.string().max(4000).optional() }).optional();
const approveBody = z.strictObject({}).optional();
const listQuery = z.strictObject({
  tenant: z.string().regex(TENANT_ID, 'is not a tenant id').optional(),
  state: z.string().optional(),
  issue: z.string().max(300).optional(),
  ...pageFields,
  order: z.enum(['asc', 'desc']).optional(),
});

export function registerMigrationRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess): void {
  const { auth, actor, principalOf, visibleMigration, checkDocumentScope } = access;
  const store = runner.store;

  app.post('/v1/migrations/check', { onRequest: auth('filer') }, async (request, reply) => {
    checkDocumentScope(request);
    const verdict = await runner.check(request.body);
    if (!verdict.ok) throw new RejectedError(verdict, null);
    reply.code(200);
    return { ok: true, verdict };
  });

  app.post('/v1/migrations', { onRequest: auth('filer') }, async (request, reply) => {
    checkDocumentScope(request);
    const { migration: m, tenant } = await runner.fileAdmitted(request.body, actor(request));
    reply.code(201).header('location', `/v1/migrations/${m.id}`);
    return migrationDetail(store, m, tenant);
  });

  // Paged (src/api/paging.ts): 100 migrations unless `limit` says otherwise, at most 500.
  app.get('/v1/migrations', { onRequest: auth('filer') }, async (request, reply) => {
    const q = queryParams(listQuery, request.query);
    const states = q.state === undefined ? undefined : stateParam(q.state);
    const order = q.order ?? 'asc';
    const limit = pageLimit(q.limit);
    const after = q.cursor === undefined ? undefined : cursorParam(q.cursor, order);
    const principal = principalOf(request);
    const list = await store.listMigrations({
      ...(q.tenant !== undefined ? { tenant: q.tenant } : {}),
      ...(q.issue !== undefined ? { issue: issueParam(q.issue, runner.issueDefaults) } : {}),
      ...(states ? { state: states } : {}),
      // A limited token's page holds only its tenants' migrations, so a page is never short for it.
      ...(principal.tenants !== null ? { tenants: [...principal.tenants] } : {}),
      ...(after ? { after } : {}),
      order,
      limit: limit + 1,
    });
    const page = list.slice(0, limit).filter((m) => inScope(principal, m.tenant));
    const last = page[page.length - 1];
    if (list.length > limit && last) announceNextPage(reply, '/v1/migrations', request.query, encodeCursor({ c: last.createdAt, i: last.id, o: order }));
    const nodes = await tenantNodes(store, page);
    return page.map((m) => migrationSummary(m, nodes.get(m.tenant) ?? null));
  });

  app.get<{ Params: { id: string } }>('/v1/migrations/:id', { onRequest: auth('filer') }, async (request) => {
    const m = await visibleMigration(request, migrationParam(request.params.id));
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/approve', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    validate(approveBody, request.body, 'approval');
    const seen = await visibleMigration(request, id);
    const { migration: m, tenant } = await runner.approveAdmitted(id, actor(request), seen);
    return migrationDetail(store, m, tenant);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/cancel', { onRequest: auth('operator') }, async (request, reply) => {
    const id = migrationParam(request.params.id);
    const body = validate(cancelBody, request.body, 'cancel request');
    const seen = await visibleMigration(request, id);
    // A running job is stopped by the node that runs it: forwarded there (node-forward.ts). Anything
    // not running is only a state change, which any node makes.
    if (seen.state === 'running') {
      const attempt = await store.getAttempt(id, seen.attempts);
      if (await forwardToNode(runner, request, reply, attempt?.node ?? null, { kind: 'job', migrationId: id })) return reply;
    }
    let m;
    try {
      m = await runner.cancel(id, actor(request), body?.reason ?? 'cancelled by an operator');
    } catch (err) {
      // It started on another node meanwhile (this runner does not supervise it): that node stops it.
      if (!(err instanceof FerryError) || err.code !== 'FERRY_CONFLICT') throw err;
      const now = await store.getMigration(id);
      if (now?.state !== 'running') throw err;
      const attempt = await store.getAttempt(id, now.attempts);
      if (await forwardToNode(runner, request, reply, attempt?.node ?? null, { kind: 'job', migrationId: id })) return reply;
      throw err;
    }
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/actions', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    const body = validate(actionBody, request.body, 'action');
    await visibleMigration(request, id);
    const m = await runner.act(id, body.action, body.reason, actor(request));
    return migrationDetail(store, m);
  });
}

/** An opaque cursor of GET /v1/migrations, made for the same `order`; anything else is a 400. */
function cursorParam(raw: string, order: 'asc' | 'desc'): { createdAt: string; id: string } {
  return decodeCursor(
    raw,
    (c) => (typeof c.c === 'string' && typeof c.i === 'string' && c.o === order && c.c.length <= 40 && c.i.length <= 100 ? { createdAt: c.c, id: c.i } : null),
    'X-Ferry-Next-Cursor of the previous page, with the same order',
  );
}

/** `?state=held,queued`: each a state, or a 400 that lists them. */
function stateParam(raw: string): MigrationState[] {
  return raw.split(',').map((s) => {
    if (!(MIGRATION_STATES as readonly string[]).includes(s)) {
      throw new FerryError('FERRY_BAD_REQUEST', `state ${JSON.stringify(s)} is not a state; use one of ${MIGRATION_STATES.join(', ')}`);
    }
    return s as MigrationState;
  });
}
