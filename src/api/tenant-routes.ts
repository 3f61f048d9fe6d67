/** /v1/tenants: an admin registers a tenant (PUT); any token reads the tenants it may see. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Runner } from '../runner/runner.ts';
import { inScope } from './auth.ts';
import { announceNextPage, decodeCursor, encodeCursor, pageFields, pageLimit } from './paging.ts';
import { queryParams, tenantParam } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';

const listQuery = z.strictObject({ ...pageFields });

export function registerTenantRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess): void {
  const { auth, principalOf, noTenant } = access;
  const store = runner.store;

  app.put<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('admin') }, async (request, reply) => {
    const id = tenantParam(request.params.id);
    if (!inScope(principalOf(request), id)) throw noTenant(id);
    const { tenant, created, handedOver } = await runner.putTenant(id, request.body);
    reply.code(created ? 201 : 200);
    return { ...tenant, handedOver };
  });

  // Paged like /v1/migrations (src/api/paging.ts), by id. Tenants are the platform's, not a history
  // (hundreds, not millions), so the page is cut from the whole list here rather than in SQL.
  app.get('/v1/tenants', { onRequest: auth('filer') }, async (request, reply) => {
    const q = queryParams(listQuery, request.query);
    const limit = pageLimit(q.limit);
    const after = q.cursor === undefined ? undefined : cursorParam(q.cursor);
    const principal = principalOf(request);
    // Compared as JavaScript strings, not in the database's collation, so that the cursor and the order agree.
    const visible = (await store.listTenants())
      .filter((t) => inScope(principal, t.id) && (after === undefined || t.id > after))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const page = visible.slice(0, limit);
    const last = page[page.length - 1];
    if (visible.length > limit && last) announceNextPage(reply, '/v1/tenants', request.query, encodeCursor({ t: last.id }));
    return page;
  });

  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('filer') }, async (request) => {
    const id = tenantParam(request.params.id);
    const tenant = await store.getTenant(id);
    if (!tenant || !inScope(principalOf(request), id)) throw noTenant(id);
    return tenant;
  });
}

/** An opaque cursor of GET /v1/tenants (the last tenant id shown); anything else is a 400. */
function cursorParam(raw: string): string {
  return decodeCursor(raw, (c) => (typeof c.t === 'string' && c.t.length <= 63 ? c.t : null), 'X-Ferry-Next-Cursor of the previous page');
}
