/**
 * Removing and listing what Ferry created in the swarm and on the host: job and helper services,
 * scratch and snapshot volumes, attempt logs. Only objects carrying Ferry's matching label are
 * removed; tenant data is no artifact kind, so nothing here can remove it.
 *
 * Volumes are read and removed through the manager's own engine: on a single-node swarm (this
 * session's scope) that is the tenant's node. A worker's volumes need a removal helper on that node
 * (not built yet: see README.md in this folder).
 */
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { ArtifactKind, LabelledObject } from '../substrate.ts';
import { JOB_ROLES, labelled, ROLE } from '../container/container-labels.ts';
import type { Labels } from '../container/container-labels.ts';
import { engineMessage, isConflict, isNotFound } from '../container/engine-errors.ts';
import { volumeLabels } from '../container/volumes.ts';
import { removeTaskContainers, serviceInfo, sleep, tasksOf } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';

/** How long a volume removal waits for the containers of removed services to go. */
const VOLUME_BUSY_WAIT_MS = 10_000;

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

async function removeVolume(engine: SwarmEngine, kind: 'scratch' | 'snapshot', ref: string): Promise<void> {
  const labels = await volumeLabels(engine.docker, ref);
  if (labels === null) return;
  if (labels[ROLE] !== kind) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `refusing to remove volume ${ref} as ${kind}: it carries ${ROLE}=${labels[ROLE] ?? 'absent'}; Ferry only removes its own ${kind} volumes, never tenant data`,
      { kind, ref },
    );
  }
  const until = Date.now() + VOLUME_BUSY_WAIT_MS;
  for (;;) {
    try {
      await engine.docker.getVolume(ref).remove();
      return;
    } catch (err) {
      if (isNotFound(err)) return;
      if (isConflict(err) && Date.now() < until) {
        await sleep(200); // a removed service's container still going away
        continue;
      }
      if (isConflict(err)) {
        throw new FerryError(
          'FERRY_CONFLICT',
          `volume ${ref} is still used by a container; remove the migration's job services first`,
          { kind, ref },
          { cause: err },
        );
      }
      throw new FerryError('FERRY_INTERNAL', `could not remove volume ${ref}: ${engineMessage(err)}`, { kind, ref }, { cause: err });
    }
  }
}

async function removeLog(ref: string): Promise<void> {
  if (!isAbsolute(ref)) throw new FerryError('FERRY_BAD_REQUEST', `log ref must be an absolute host path, got ${ref}`);
  let isFile: boolean;
  try {
    isFile = statSync(ref).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isFile) throw new FerryError('FERRY_CONFLICT', `refusing to remove log ${ref}: it is not a regular file`, { kind: 'log', ref });
  await rm(ref, { force: true });
}

/** Every service and (manager-local) volume carrying Ferry's role label that belongs to a migration. */
export async function listLabelled(engine: SwarmEngine): Promise<LabelledObject[]> {
  const out: LabelledObject[] = [];
  const services = (await engine.docker.listServices({ filters: { label: [ROLE] } })) as Array<{ Spec?: { Name?: string; Labels?: Labels } }>;
  for (const s of services) {
    const labels = s.Spec?.Labels ?? {};
    const role = labels[ROLE];
    if (role !== undefined && JOB_ROLES.has(role) && labels['ferry.migration'] && s.Spec?.Name) out.push(labelled('job', s.Spec.Name, labels));
  }
  const volumes = (await engine.docker.listVolumes({ filters: { label: [ROLE] } })).Volumes ?? [];
  for (const v of volumes) {
    const labels = (v.Labels ?? {}) as Labels;
    const role = labels[ROLE];
    if (role === 'scratch' || role === 'snapshot') out.push(labelled(role, v.Name, labels));
  }
  return out;
}
