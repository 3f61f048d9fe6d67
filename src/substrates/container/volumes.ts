/**
 * The named volumes of the container substrate: the tenant's data (never created, emptied or
 * removed by Ferry), and the scratch and snapshot volumes Ferry creates, labelled as its own.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { ROLE } from './container-labels.ts';
import type { Labels } from './container-labels.ts';
import { isNotFound } from './engine-errors.ts';

/** What the engine accepts as a named volume: anything else (a host path, a socket) is refused. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Who a scratch or snapshot volume belongs to, as its labels say. */
export interface VolumeOwner {
  readonly migrationId: string;
  readonly issue: string;
  readonly tenantId: string;
}

/** The tenant's data as configured: its `data`, default `ferry-tenant-<id>`. */
export function tenantDataName(tenant: Tenant): string {
  return tenant.data || `ferry-tenant-${tenant.id}`;
}

/** The tenant's volume name, refused unless it is one: never a host path (a socket, a folder) to mount. */
export function tenantVolume(tenant: Tenant): string {
  const name = tenantDataName(tenant);
  if (!VOLUME_NAME.test(name)) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `tenant ${tenant.id}'s data ${JSON.stringify(name)} is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); the container substrate mounts named volumes only, never host paths`,
      { tenant: tenant.id },
    );
  }
  return name;
}

/** Labels of a volume, or null when it does not exist. */
export async function volumeLabels(docker: Docker, name: string): Promise<Labels | null> {
  try {
    const info = await docker.getVolume(name).inspect();
    return (info.Labels ?? {}) as Labels;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export async function ensureVolume(docker: Docker, name: string, role: 'scratch' | 'snapshot', owner: VolumeOwner): Promise<void> {
  const existing = await volumeLabels(docker, name);
  if (existing === null) {
    await docker.createVolume({
      Name: name,
      Labels: { [ROLE]: role, 'ferry.migration': owner.migrationId, 'ferry.issue': owner.issue, 'ferry.tenant': owner.tenantId },
    });
    return;
  }
  // Engines answer "create" on an existing name with the existing volume: check it is ours.
  if (existing[ROLE] !== role || existing['ferry.migration'] !== owner.migrationId) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `volume ${name} already exists and is not the ${role} of migration ${owner.migrationId} (labels ${JSON.stringify(existing)}); remove or rename it`,
    );
  }
}
