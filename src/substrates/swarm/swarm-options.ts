/**
 * Options of the `swarm` substrate: the container substrate's options (engine socket, dataDir for
 * stop markers, default image, pids and log bounds; resolved by its resolveContainerOptions, so the
 * rules are the same) plus where each tenant lives in the swarm.
 */
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { resolveContainerOptions } from '../container/container-options.ts';
import type { ContainerSubstrateConfig, ContainerSubstrateOptions } from '../container/container-options.ts';

/** The swarm's manager socket when nothing names one: the one scripts/setup-swarm.sh starts. */
export const DEFAULT_SWARM_SOCKET_PATH = '/run/ferry-swarm/docker.sock';

export interface SwarmSubstrateOptions extends ContainerSubstrateOptions {
  /**
   * The swarm node each tenant lives on, by tenant id: a node name (hostname), a node id, or a
   * placement constraint (`node.labels.tenant==a`, anything containing `==` or `!=`). A tenant not
   * listed lives on `defaultNode`. (Issue #13 puts `node` on the tenant; core's Tenant has no such
   * field yet, so it is configured here.)
   */
  readonly tenantNodes?: Readonly<Record<string, string>> | undefined;
  /** Node of tenants not in `tenantNodes`. Default: the manager Ferry talks to (its node id, read at init()). */
  readonly defaultNode?: string | undefined;
  /** How often the watch polls the job's task, in ms. Default 250. */
  readonly pollMs?: number | undefined;
}

export interface SwarmSubstrateConfig extends ContainerSubstrateConfig {
  readonly tenantNodes: Readonly<Record<string, string>>;
  readonly defaultNode: string | null;
  readonly pollMs: number;
}

export function resolveSwarmOptions(raw: SwarmSubstrateOptions, env: Readonly<Record<string, string | undefined>> = process.env): SwarmSubstrateConfig {
  const base = resolveContainerOptions({ ...raw, socketPath: raw.socketPath ?? (env['DOCKER_HOST'] ? undefined : DEFAULT_SWARM_SOCKET_PATH) }, env);
  const pollMs = raw.pollMs ?? 250;
  if (!Number.isInteger(pollMs) || pollMs < 10) {
    throw new FerryError('FERRY_BAD_REQUEST', `swarm substrate: pollMs must be a whole number of ms >= 10, got ${String(raw.pollMs)}`);
  }
  return Object.freeze({
    ...base,
    tenantNodes: Object.freeze({ ...(raw.tenantNodes ?? {}) }),
    defaultNode: raw.defaultNode ?? null,
    pollMs,
  });
}

/** What the placement of a tenant's jobs names: the node as configured, or the manager's own node id. */
export function tenantNode(config: SwarmSubstrateConfig, managerNodeId: string, tenant: Tenant): string {
  return config.tenantNodes[tenant.id] ?? config.defaultNode ?? managerNodeId;
}

/**
 * The placement constraint of a node reference: a constraint as it is; a 25-character swarm id
 * becomes `node.id==`; anything else is a hostname (`node.hostname==`).
 */
export function placementConstraint(node: string): string {
  if (node.includes('==') || node.includes('!=')) return node;
  if (/^[a-z0-9]{25}$/.test(node)) return `node.id==${node}`;
  return `node.hostname==${node}`;
}
