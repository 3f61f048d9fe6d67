/**
 * Removing and listing what Ferry created in the swarm and on the host: job and helper services,
 * scratch and snapshot volumes, attempt logs. Only objects carrying Ferry's matching label are
 * removed; tenant data is no artifact kind, so nothing here can remove it.
 *
 * Volumes are read and removed on the node that holds them (node-volumes.ts): through the manager's
 * API on its own node, through a node agent on any other.
 */
import { FerryError } from '../../core/errors.ts';
import type { ArtifactKind, LabelledObject } from '../substrate.ts';
import { JOB_ROLES, labelled, ROLE } from '../container/container-labels.ts';
import type { Labels } from '../container/container-labels.ts';
import { engineMessage, isNotFound } from '../container/engine-errors.ts';
import { removeLog } from '../container/labelled-artifacts.ts';
import { volumesOn } from './node-volumes.ts';
import { nodeById } from './placement.ts';
import { listNodes, removeTaskContainers, serviceInfo, tasksOf } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';

export async function removeArtifact(engine: SwarmEngine, kind: ArtifactKind, ref: string): Promise<void> {
  switch (kind) {
    case 'job':
      return removeService(engine, ref);
    case 'scratch':
    case 'snapshot':
      return removeVolume(engine, kind, ref);
    case 'log':
      return removeLog(ref);
  }
}

/** A job or helper service, its task's container and its stop marker; idempotent. */
export async function removeService(engine: SwarmEngine, ref: string): Promise<void> {
  const info = await serviceInfo(engine.docker, ref);
  if (info) {
    const role = info.Spec.Labels?.[ROLE];
    if (role === undefined || !JOB_ROLES.has(role)) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `refusing to remove service ${ref}: it carries no Ferry job label (${ROLE}=${role ?? 'absent'}); it is not Ferry's`,
        {
          kind: 'job',
          ref,
        },
      );
    }
    const tasks = await tasksOf(engine.docker, info.ID);
    try {
      await engine.docker.getService(info.ID).remove();
    } catch (err) {
      if (!isNotFound(err))
        throw new FerryError('FERRY_INTERNAL', `could not remove service ${ref}: ${engineMessage(err)}`, { kind: 'job', ref }, { cause: err });
    }
    // The swarm leaves the task's container behind, holding the volumes it used.
    await removeTaskContainers(engine, tasks);
  }
  engine.stops.delete(ref);
}

/** A scratch or snapshot volume, on the node its place file names (the manager's when none). */
async function removeVolume(engine: SwarmEngine, kind: 'scratch' | 'snapshot', ref: string): Promise<void> {
  const where = engine.places.get(ref);
  const node = await nodeById(engine, where ?? engine.managerNodeId());
  await volumesOn(engine, node).remove(ref, kind);
  engine.places.delete(ref);
}

/** Every service, and every volume on the nodes that are up, carrying Ferry's role label that belongs to a migration. */
export async function listLabelled(engine: SwarmEngine): Promise<LabelledObject[]> {
  const out: LabelledObject[] = [];
  const services = (await engine.docker.listServices({ filters: { label: [ROLE] } })) as Array<{ Spec?: { Name?: string; Labels?: Labels } }>;
  for (const s of services) {
    const labels = s.Spec?.Labels ?? {};
    const role = labels[ROLE];
    if (role !== undefined && JOB_ROLES.has(role) && labels['ferry.migration'] && s.Spec?.Name) out.push(labelled('job', s.Spec.Name, labels));
  }
  // Volumes on every node that can answer; a node that is down is read when it is back.
  for (const n of await listNodes(engine.docker)) {
    if (n.state !== 'ready') continue;
    const node = await nodeById(engine, n.id).catch(() => null);
    if (!node) continue;
    for (const v of await volumesOn(engine, node).list()) {
      const role = v.labels[ROLE];
      if (role === 'scratch' || role === 'snapshot') out.push(labelled(role, v.name, v.labels));
    }
  }
  return out;
}
