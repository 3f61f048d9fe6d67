/**
 * GET /v1/nodes (filer): every node of the cluster as the store records it — its state (`up`,
 * `lost`, `left`), API address, substrate, capacity and the dimensions it enforces, when it started
 * and was last seen, and what runs on it now: the running migrations whose current attempt it
 * started, and the sum of their declared peaks per dimension (the budget the scheduler counts on
 * that node). Quantities are numbers, as in /v1/capacity: cpu in millicores, memory in bytes.
 *
 * A token limited to tenants sees every node (nodes are not tenants' secrets), but of what runs on
 * them only its own tenants' migrations, and peaks summed over those alone, as /v1/capacity does:
 * it learns nothing of other tenants' work, not even how much of it there is.
 */
import type { FastifyInstance } from 'fastify';
import type { Resources } from '../core/types.ts';
import type { Runner } from '../runner/runner.ts';
import type { NodeRecord } from '../store/records.ts';
import { NO_QUERY, queryParams } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';

export interface NodeView {
  readonly name: string;
  readonly state: NodeRecord['state'];
  readonly url: string | null;
  readonly substrate: string;
  readonly capacity: Resources;
  readonly enforced: readonly string[] | null;
  readonly running: { readonly migrations: string[]; readonly peaks: Record<string, number> };
  readonly lastSeenAt: string;
  readonly startedAt: string;
  readonly lostAt: string | null;
  /** Whether this is the node that answered. */
  readonly self: boolean;
}

export function registerNodeRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess): void {
  const { auth, principalOf } = access;
  const store = runner.store;

  app.get('/v1/nodes', { onRequest: auth('filer') }, async (request) => {
    // Takes no query: an unknown field is an error, as everywhere.
    queryParams(NO_QUERY, request.query);
    const principal = principalOf(request);
    const [nodes, running, visible] = await Promise.all([
      store.listNodes(),
      store.listRunning(),
      // Read separately for a limited token only: listRunning() has no tenant. A migration that
      // started between the two reads is left out, never shown to a token that may not see it.
      principal.tenants === null
        ? Promise.resolve(null)
        : store.listMigrations({ state: ['running'], tenants: [...principal.tenants] }).then((ms) => new Set(ms.map((m) => m.id))),
    ]);
    const byNode = new Map<string, { migrations: string[]; peaks: Record<string, number> }>();
    for (const r of running) {
      if (r.node === null || (visible !== null && !visible.has(r.id))) continue;
      const on = byNode.get(r.node) ?? { migrations: [], peaks: {} };
      on.migrations.push(r.id);
      for (const [d, v] of Object.entries(r.peak)) on.peaks[d] = (on.peaks[d] ?? 0) + v;
      byNode.set(r.node, on);
    }
    return {
      nodes: nodes.map((n): NodeView => ({
        name: n.name,
        state: n.state,
        url: n.url,
        substrate: n.substrate,
        capacity: n.capacity,
        enforced: n.enforced,
        running: byNode.get(n.name) ?? { migrations: [], peaks: {} },
        lastSeenAt: n.lastSeenAt,
        startedAt: n.startedAt,
        lostAt: n.lostAt,
        self: n.name === runner.nodeName,
      })),
      scoped: principal.tenants !== null,
    };
  });
}
