/**
 * Where a tenant's jobs run: the one swarm node its `placement` names (a node name, a node id, or a
 * constraint; none: the manager's own node), checked before anything is started there. A tenant
 * whose node is gone, down or not `active` (drained, paused) gets nothing started; the error says
 * why, and the runner records it on the migration. A constraint that matches several nodes is
 * refused: a tenant's data lives on one node, so its jobs are pinned to that node's id.
 */
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { listNodes } from './swarm-engine.ts';
import type { NodeDescription, SwarmEngine } from './swarm-engine.ts';
import { DEFAULT_NODE_ENGINE_SOCKET, ENGINE_SOCKET_LABEL, placementConstraint } from './swarm-options.ts';

export interface TenantNode {
  readonly id: string;
  readonly hostname: string;
  /** `node.id==<id>`: every job and helper of the tenant goes exactly there. */
  readonly constraint: string;
  /** The node's own engine socket, as its `ferry.engine-socket` label says. */
  readonly engineSocket: string;
  /** The node Ferry's manager runs on: its volumes are reached through the manager's own API. */
  readonly isManager: boolean;
}

/** Throws FERRY_CONFLICT unless exactly one node satisfies the tenant's placement, and it is ready and active. */
export async function tenantNode(engine: SwarmEngine, tenant: Tenant): Promise<TenantNode> {
  const constraint = placementConstraint(tenant.placement, engine.managerNodeId());
  const m = /^node\.(id|hostname|role|platform\.os|platform\.arch|labels\.([^=!\s]+))\s*(==|!=)\s*(.+)$/.exec(constraint);
  if (!m) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `tenant ${tenant.id}'s placement ${JSON.stringify(constraint)} is not a constraint Ferry can read; nothing was started`,
    );
  }
  const [, field, label, op, value] = m as unknown as [string, string, string | undefined, string, string];
  const nodes = await listNodes(engine.docker);
  const matches = nodes.filter((n) => {
    const actual = field === 'id' ? n.id : field === 'hostname' ? n.hostname : field === 'role' ? n.role : label ? n.labels[label] : n.platform[field];
    return op === '==' ? actual === value : actual !== value;
  });
  if (matches.length === 0) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `tenant ${tenant.id}'s swarm node (${constraint}) is not in the swarm; nothing was started. Join the node again or change the tenant's placement`,
      { tenant: tenant.id, constraint },
    );
  }
  if (matches.length > 1) {
    const names = matches.map((n) => n.hostname || n.id).join(', ');
    throw new FerryError(
      'FERRY_CONFLICT',
      `tenant ${tenant.id}'s placement (${constraint}) matches ${matches.length} swarm nodes (${names}); a tenant's data lives on one node, so name one`,
      { tenant: tenant.id, constraint },
    );
  }
  return usable(engine, matches[0]!, `tenant ${tenant.id}'s swarm node`, { tenant: tenant.id, constraint });
}

/** A node by id, as a TenantNode, for what was made there (a scratch or snapshot volume). */
export async function nodeById(engine: SwarmEngine, id: string): Promise<TenantNode> {
  const node = (await listNodes(engine.docker)).find((n) => n.id === id);
  if (!node) {
    throw new FerryError('FERRY_CONFLICT', `swarm node ${id} is no longer in the swarm; what Ferry made there cannot be reached until it joins again`, {
      node: id,
    });
  }
  return usable(engine, node, 'swarm node', { node: id });
}

function usable(engine: SwarmEngine, node: NodeDescription, what: string, detail: Record<string, string>): TenantNode {
  if (node.state !== 'ready' || node.availability !== 'active') {
    throw new FerryError(
      'FERRY_CONFLICT',
      `${what} ${node.hostname || node.id} cannot take jobs (${node.state}, ${node.availability}); nothing was started. Bring the node back (ready, availability active) and retry`,
      detail,
    );
  }
  return {
    id: node.id,
    hostname: node.hostname,
    constraint: `node.id==${node.id}`,
    engineSocket: node.labels[ENGINE_SOCKET_LABEL] ?? DEFAULT_NODE_ENGINE_SOCKET,
    isManager: node.id === engine.managerNodeId(),
  };
}
