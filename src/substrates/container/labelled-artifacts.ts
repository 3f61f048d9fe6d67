/**
 * Removing and listing what Ferry created on the engine and the host: job and helper containers,
 * scratch and snapshot volumes, attempt logs. Only objects carrying Ferry's matching label are
 * removed; tenant data is no artifact kind, so nothing here can remove it.
 */
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { ArtifactKind, LabelledObject } from '../substrate.ts';
import { JOB_ROLES, labelled, ROLE } from './container-labels.ts';
import type { Labels } from './container-labels.ts';
import { inspectOrNull } from './container-engine.ts';
import type { ContainerEngine } from './container-engine.ts';
import { engineMessage, isConflict, isNotFound } from './engine-errors.ts';
import { volumeLabels } from './volumes.ts';

export async function removeArtifact(engine: ContainerEngine, kind: ArtifactKind, ref: string): Promise<void> {
  switch (kind) {
    case 'job':
      return removeJobContainer(engine, ref);
    case 'scratch':
    case 'snapshot':
      return removeVolume(engine, kind, ref);
    case 'log':
      return removeLog(ref);
  }
}

/** A job or helper container (and its stop marker); idempotent. */
export async function removeJobContainer(engine: ContainerEngine, ref: string): Promise<void> {
  const container = engine.docker.getContainer(ref);
  const info = await inspectOrNull(container);
  if (info) {
    const role = (info.Config.Labels ?? {})[ROLE];
    if (role === undefined || !JOB_ROLES.has(role)) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `refusing to remove container ${ref}: it carries no Ferry job label (${ROLE}=${role ?? 'absent'}); it is not Ferry's`,
        { kind: 'job', ref },
      );
    }
    try {
      // v: anonymous volumes of the image go with it; named volumes (tenant, scratch) never do.
      await container.remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err))
        throw new FerryError('FERRY_INTERNAL', `could not remove container ${ref}: ${engineMessage(err)}`, { kind: 'job', ref }, { cause: err });
    }
  }
  engine.stops.delete(ref);
}

async function removeVolume(engine: ContainerEngine, kind: 'scratch' | 'snapshot', ref: string): Promise<void> {
  const labels = await volumeLabels(engine.docker, ref);
  if (labels === null) return;
  if (labels[ROLE] !== kind) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `refusing to remove volume ${ref} as ${kind}: it carries ${ROLE}=${labels[ROLE] ?? 'absent'}; Ferry only removes its own ${kind} volumes, never tenant data`,
      { kind, ref },
    );
  }
  try {
    // Never `force`: on Podman that would also remove the containers using the volume.
    await engine.docker.getVolume(ref).remove();
  } catch (err) {
    if (isNotFound(err)) return;
    if (isConflict(err)) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `volume ${ref} is still used by a container; remove the migration's job containers first`,
        { kind, ref },
        { cause: err },
      );
    }
    throw new FerryError('FERRY_INTERNAL', `could not remove volume ${ref}: ${engineMessage(err)}`, { kind, ref }, { cause: err });
  }
}

export async function removeLog(ref: string): Promise<void> {
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

/** Every container and volume carrying Ferry's role label that belongs to a migration. */
export async function listLabelled(engine: ContainerEngine): Promise<LabelledObject[]> {
  const out: LabelledObject[] = [];
  const containers = await engine.docker.listContainers({ all: true, filters: { label: [ROLE] } });
  for (const c of containers) {
    const labels = c.Labels ?? {};
    const role = labels[ROLE];
    const name = (c.Names?.[0] ?? c.Id).replace(/^\//, '');
    // A tenant's adopt helper belongs to no migration: it is removed by the next adoption.
    if (role !== undefined && JOB_ROLES.has(role) && labels['ferry.migration']) out.push(labelled('job', name, labels));
  }
  const volumes = (await engine.docker.listVolumes({ filters: { label: [ROLE] } })).Volumes ?? [];
  for (const v of volumes) {
    const labels = (v.Labels ?? {}) as Labels;
    const role = labels[ROLE];
    if (role === 'scratch' || role === 'snapshot') out.push(labelled(role, v.Name, labels));
  }
  return out;
}
