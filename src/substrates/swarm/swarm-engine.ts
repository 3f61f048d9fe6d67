/**
 * What the parts of the swarm substrate share (the manager's client, the resolved options, the stop
 * markers, the manager's own node id), and reading services, tasks and nodes from the manager.
 */
import type Docker from 'dockerode';
import { isConflict, isNotFound } from '../container/engine-errors.ts';
import type { StopMarkers } from '../container/stop-markers.ts';
import type { SwarmSubstrateConfig } from './swarm-options.ts';
import type { VolumePlaces } from './volume-places.ts';

export interface SwarmEngine {
  readonly docker: Docker;
  readonly config: SwarmSubstrateConfig;
  readonly stops: StopMarkers;
  /** This Ferry among others on the same swarm (tests run several): a digest of its dataDir. */
  readonly instance: string;
  /** Which node holds each scratch and snapshot volume. */
  readonly places: VolumePlaces;
  /** The swarm node id of the manager Ferry talks to (read at init()). */
  readonly managerNodeId: () => string;
}

/** The parts of a task Ferry reads (the typings have none). */
export interface SwarmTask {
  readonly ID: string;
  readonly NodeID?: string;
  readonly CreatedAt?: string;
  readonly DesiredState?: string;
  readonly Status?: {
    readonly Timestamp?: string;
    readonly State?: string;
    readonly Message?: string;
    readonly Err?: string;
    readonly ContainerStatus?: { readonly ContainerID?: string; readonly ExitCode?: number };
  };
}

/** Task states after which the task never runs again. */
export const FINAL_TASK_STATES: ReadonlySet<string> = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove']);
/** Task states before the container exists. */
export const WAITING_TASK_STATES: ReadonlySet<string> = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready']);

export interface ServiceInfo {
  readonly ID: string;
  readonly CreatedAt?: string;
  readonly Spec: Docker.ServiceSpec & {
    readonly Labels?: Record<string, string>;
    readonly TaskTemplate?: { readonly Resources?: { readonly Limits?: { readonly MemoryBytes?: number } } };
  };
}

/** A service's inspect, or null when it does not exist. */
export async function serviceInfo(docker: Docker, ref: string): Promise<ServiceInfo | null> {
  try {
    return (await docker.getService(ref).inspect()) as ServiceInfo;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * Remove the containers of a removed service's tasks. The swarm leaves a finished task's container
 * on its node after the service is removed (Docker 20.10), and it keeps the task's volumes in use.
 * Only containers on the manager's own engine are reached here; on another node, the exited
 * containers holding a volume are removed with the volume (node-volumes.ts).
 */
export async function removeTaskContainers(engine: SwarmEngine, tasks: readonly SwarmTask[]): Promise<void> {
  for (const task of tasks) {
    const id = task.Status?.ContainerStatus?.ContainerID;
    if (!id || task.NodeID !== engine.managerNodeId()) continue;
    try {
      await engine.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err; // 409: already being removed
    }
  }
}

/** The tasks of a service, newest first. */
export async function tasksOf(docker: Docker, serviceId: string): Promise<SwarmTask[]> {
  const tasks = (await docker.listTasks({ filters: { service: [serviceId] } })) as SwarmTask[];
  return tasks.sort((a, b) => Date.parse(b.CreatedAt ?? '') - Date.parse(a.CreatedAt ?? ''));
}

export interface NodeState {
  readonly id: string;
  readonly hostname: string;
  /** `ready`, `down`, `unknown`, `disconnected`. */
  readonly state: string;
  /** `active`, `pause`, `drain`. */
  readonly availability: string;
}

export async function nodeOrNull(docker: Docker, id: string): Promise<NodeState | null> {
  try {
    const n = (await docker.getNode(id).inspect()) as {
      ID: string;
      Description?: { Hostname?: string };
      Status?: { State?: string };
      Spec?: { Availability?: string };
    };
    return { id: n.ID, hostname: n.Description?.Hostname ?? '', state: n.Status?.State ?? 'unknown', availability: n.Spec?.Availability ?? 'active' };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export interface NodeDescription extends NodeState {
  readonly labels: Record<string, string>;
  readonly role: string;
  readonly platform: Record<string, string | undefined>;
}

export async function listNodes(docker: Docker): Promise<NodeDescription[]> {
  const nodes = (await docker.listNodes()) as Array<{
    ID: string;
    Description?: { Hostname?: string; Platform?: { OS?: string; Architecture?: string } };
    Status?: { State?: string };
    Spec?: { Availability?: string; Labels?: Record<string, string>; Role?: string };
  }>;
  return nodes.map((n) => ({
    id: n.ID,
    hostname: n.Description?.Hostname ?? '',
    state: n.Status?.State ?? 'unknown',
    availability: n.Spec?.Availability ?? 'active',
    labels: n.Spec?.Labels ?? {},
    role: n.Spec?.Role ?? 'worker',
    platform: { 'platform.os': n.Description?.Platform?.OS, 'platform.arch': n.Description?.Platform?.Architecture },
  }));
}

/** A wait that keeps the process alive: Ferry is waiting on the swarm, with nothing else pending. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
