/**
 * GET /v1/capacity (filer): what the scheduler of the node that answers may hand out at once (the
 * node's capacity, or the configured one) and what the migrations running on that node use of it
 * (their declared peaks). Every node of a cluster answers for itself; GET /v1/nodes shows them all.
 * A token limited to tenants sees the use of its own tenants' migrations only, so that it learns
 * nothing of others.
 */
import type { FastifyInstance } from 'fastify';
import type { Runner } from '../runner/runner.ts';
import { inScope } from './auth.ts';
import { NO_QUERY, queryParams } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';

export function registerCapacityRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess): void {
  const { auth, principalOf } = access;
  app.get('/v1/capacity', { onRequest: auth('filer') }, async (request) => {
    // Takes no query: an unknown field is an error, as everywhere.
    queryParams(NO_QUERY, request.query);
    const principal = principalOf(request);
    const [here, all] = await Promise.all([runner.store.listRunning(runner.nodeName), runner.store.listMigrations({ state: ['running'] })]);
    const onThisNode = new Set(here.map((r) => r.id));
    const running = all.filter((m) => onThisNode.has(m.id) && inScope(principal, m.tenant));
    const used: Record<string, number> = {};
    for (const m of running) for (const [d, v] of Object.entries(m.peak)) used[d] = (used[d] ?? 0) + v;
    return {
      node: runner.nodeName,
      capacity: runner.capacity,
      used,
      running: running.map((m) => ({ id: m.id, tenant: m.tenant, peak: m.peak })),
      scoped: principal.tenants !== null,
    };
  });
}
