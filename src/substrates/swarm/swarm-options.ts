/**
 * Options of the `swarm` substrate: the container substrate's options (engine socket, dataDir for
 * stop markers, default image, pids and log bounds; resolved by its resolveContainerOptions, so the
 * rules are the same) plus the image of its node agents and how often it polls a task.
 */
import { FerryError } from '../../core/errors.ts';
import { resolveContainerOptions } from '../container/container-options.ts';
import type { ContainerSubstrateConfig, ContainerSubstrateOptions } from '../container/container-options.ts';

/** The swarm's manager socket when nothing names one: the one scripts/setup-swarm.sh starts. */
export const DEFAULT_SWARM_SOCKET_PATH = '/run/ferry-swarm/docker.sock';

/** The node label naming a node's own engine socket (default `/var/run/docker.sock`), which Ferry's node agents mount. */
export const ENGINE_SOCKET_LABEL = 'ferry.engine-socket';
export const DEFAULT_NODE_ENGINE_SOCKET = '/var/run/docker.sock';
/** An image with `sh` and the `docker` CLI, for the agents Ferry runs on worker nodes. */
export const DEFAULT_HELPER_IMAGE = 'docker:27-cli';

export interface SwarmSubstrateOptions extends ContainerSubstrateOptions {
  /**
   * The image of Ferry's node agents: short one-shot services placed on a worker node, with that
   * node's engine socket mounted, that inspect and remove Ferry's volumes there (a manager's API
   * reaches only its own engine's volumes). It needs `sh` and the `docker` CLI. Default `docker:27-cli`.
   */
  readonly helperImage?: string | undefined;
  /** How often the watch polls the job's (and a helper's) task, in ms. Default 100. */
  readonly pollMs?: number | undefined;
}

export interface SwarmSubstrateConfig extends ContainerSubstrateConfig {
  readonly helperImage: string;
  readonly pollMs: number;
}

export function resolveSwarmOptions(raw: SwarmSubstrateOptions, env: Readonly<Record<string, string | undefined>> = process.env): SwarmSubstrateConfig {
  const base = resolveContainerOptions({ ...raw, socketPath: raw.socketPath ?? (env['DOCKER_HOST'] ? undefined : DEFAULT_SWARM_SOCKET_PATH) }, env);
  const pollMs = raw.pollMs ?? 100;
  if (!Number.isInteger(pollMs) || pollMs < 10) {
    throw new FerryError('FERRY_BAD_REQUEST', `swarm substrate: pollMs must be a whole number of ms >= 10, got ${String(raw.pollMs)}`);
  }
  return Object.freeze({ ...base, helperImage: raw.helperImage ?? DEFAULT_HELPER_IMAGE, pollMs });
}

/**
 * The placement constraint of a tenant's `placement`: a constraint as it is; a 25-character swarm id
 * becomes `node.id==`; anything else is a hostname (`node.hostname==`). Null: the manager's own node.
 */
export function placementConstraint(placement: string | null | undefined, managerNodeId: string): string {
  const node = placement ?? managerNodeId;
  if (node.includes('==') || node.includes('!=')) return node;
  if (/^[a-z0-9]{25}$/.test(node)) return `node.id==${node}`;
  return `node.hostname==${node}`;
}
