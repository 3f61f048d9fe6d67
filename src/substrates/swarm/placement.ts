/**
 * Where a tenant's jobs run: the placement constraint of its swarm node, and the check made before
 * anything is started there. A tenant whose node is gone, down or not `active` (drained, paused)
 * gets nothing started; the error says why, and the runner records it on the migration.
 */
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { listNodes } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';
import { placementConstraint, tenantNode } from './swarm-options.ts';

export function tenantConstraint(engine: SwarmEngine, tenant: Tenant): string {
  return placementConstraint(tenantNode(engine.config, engine.managerNodeId(), tenant));
}

/** Throws FERRY_CONFLICT unless a ready, active node satisfies the tenant's constraint. */
export async function checkTenantNode(engine: SwarmEngine, tenant: Tenant): Promise<string> {
  const constraint = tenantConstraint(engine, tenant);
  const m = /^node\.(id|hostname|labels\.([^=!]+))\s*(==|!=)\s*(.+)$/.exec(constraint);
  if (!m) return constraint; // a constraint Ferry does not read: the swarm decides
  const [, field, label, op, value] = m as unknown as [string, string, string | undefined, string, string];
  const nodes = await listNodes(engine.docker);
  const matches = nodes.filter((n) => {
    const actual = field === 'id' ? n.id : field === 'hostname' ? n.hostname : n.labels[label ?? ''];
    return op === '==' ? actual === value : actual !== value;
  });
  if (matches.length === 0) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `tenant ${tenant.id}'s swarm node (${constraint}) is not in the swarm; nothing was started. Join the node again or move the tenant`,
      { tenant: tenant.id, constraint },
    );
  }
  if (!matches.some((n) => n.state === 'ready' && n.availability === 'active')) {
    const states = matches.map((n) => `${n.hostname || n.id}: ${n.state}, ${n.availability}`).join('; ');
    throw new FerryError(
      'FERRY_CONFLICT',
      `tenant ${tenant.id}'s swarm node (${constraint}) cannot take jobs (${states}); nothing was started. Bring the node back (ready, availability active) and retry`,
      { tenant: tenant.id, constraint },
    );
  }
  return constraint;
}
