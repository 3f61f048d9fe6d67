/** /v1/tenants: an admin registers a tenant (PUT); any token reads the tenants it may see. */
import type { FastifyInstance } from 'fastify';
import type { Runner } from '../runner/runner.ts';
import { inScope } from './auth.ts';
import { tenantParam } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';

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

  app.get('/v1/tenants', { onRequest: auth('filer') }, async (request) => {
    const principal = principalOf(request);
    return (await store.listTenants()).filter((t) => inScope(principal, t.id));
  });

  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('filer') }, async (request) => {
    const id = tenantParam(request.params.id);
    const tenant = await store.getTenant(id);
    if (!tenant || !inScope(principalOf(request), id)) throw noTenant(id);
    return tenant;
  });
}
