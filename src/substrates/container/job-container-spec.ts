/**
 * What a step's job container is, as the engine is asked to create it: labelled as a migration
 * (TR-38) with what a re-attach needs, run once (`RestartPolicy: no`, no health check), the
 * declared peak as its hard memory, CPU and pids limits, and confined (issue #8): its tenant's
 * `uid:gid`, all capabilities dropped, no new privileges, only the tenant volume and its scratch
 * mounted, the job contract's environment and the request's `env`, nothing of Ferry's.
 */
import type Docker from 'dockerode';
import { statSync } from 'node:fs';
import { FerryError } from '../../core/errors.ts';
import type { Identity, Tenant } from '../../core/types.ts';
import { jobLabels } from '../substrate.ts';
import type { StepSpec } from '../substrate.ts';
import { LABEL_LOG_LIMIT, LABEL_LOG_PATH, LABEL_LOG_START, LABEL_TIMEOUT_MS } from './container-labels.ts';
import type { Labels } from './container-labels.ts';
import type { ContainerSubstrateConfig } from './container-options.ts';

/** Where a job sees its data. */
export const TENANT_MOUNT = '/ferry/tenant';
export const SCRATCH_MOUNT = '/ferry/scratch';

export const NO_NEW_PRIVILEGES = 'no-new-privileges';

/** `User` of a tenant's job: its identity, or root when the tenant is allowed it. */
export function jobUser(tenant: Tenant): string {
  if (tenant.allowRoot) return '0:0';
  const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  if (uid === 0 || gid === 0) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `tenant ${tenant.id} would run its jobs as uid ${uid} gid ${gid} (root) but is not allowed root; give it another runAs, or set allowRoot`,
      { tenant: tenant.id },
    );
  }
  return `${uid}:${gid}`;
}

export function checkedIdentity(identity: Identity | undefined, what: string): Identity {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 2 ** 32 - 1;
  if (!identity || !ok(identity.uid) || !ok(identity.gid)) {
    throw new FerryError('FERRY_INVALID_REQUEST', `${what} must be {uid, gid} with whole numbers >= 0, got ${JSON.stringify(identity)}`);
  }
  return identity;
}

/** The create options of a step's job container; the caller has checked image, volumes and user. */
export function jobContainerOptions(
  job: { spec: StepSpec; ref: string; image: string; tenantVolume: string; user: string },
  config: ContainerSubstrateConfig,
): Docker.ContainerCreateOptions {
  const { spec, ref, image, tenantVolume, user } = job;
  const labels: Labels = {
    ...jobLabels(spec),
    [LABEL_LOG_PATH]: spec.logPath,
    [LABEL_LOG_START]: String(fileSize(spec.logPath)),
    [LABEL_LOG_LIMIT]: String(config.logLimit),
  };
  if (spec.timeoutMs !== undefined) labels[LABEL_TIMEOUT_MS] = String(spec.timeoutMs);

  // Only the contract and the request's env: nothing of Ferry's own environment is passed on.
  const env = { ...spec.env, FERRY_TENANT_DATA: TENANT_MOUNT, FERRY_SCRATCH: SCRATCH_MOUNT };
  const [entry, ...args] = spec.argv;
  if (entry === undefined) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `step ${spec.stepName} of migration ${spec.migrationId} cannot run: it has no command; give its \`run\` a program and file the request again`,
      { ref },
    );
  }
  const memory = spec.limits['memory'];
  const cpu = spec.limits['cpu'];
  const pids = spec.limits['pids'] ?? config.defaultPidsLimit;
  return {
    name: ref,
    Image: image,
    // The step's argv is the whole command: it replaces the image's entrypoint, not just its CMD.
    Entrypoint: [entry],
    Cmd: args,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    Healthcheck: { Test: ['NONE'] },
    Tty: false,
    OpenStdin: false,
    User: user,
    HostConfig: {
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
      Privileged: false,
      SecurityOpt: [NO_NEW_PRIVILEGES],
      // allowRoot keeps the engine's default capabilities (a root job that needs them); others keep none.
      ...(spec.tenant.allowRoot ? {} : { CapDrop: ['ALL'] }),
      PidsLimit: pids,
      ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
      ...(cpu !== undefined ? { NanoCpus: cpu * 1_000_000 } : {}),
      ...(config.cgroupParent ? { CgroupParent: config.cgroupParent } : {}),
      // Exactly these two named volumes: no bind mount, so never the engine's socket.
      Mounts: [
        { Type: 'volume', Source: tenantVolume, Target: TENANT_MOUNT },
        { Type: 'volume', Source: spec.scratchRef, Target: SCRATCH_MOUNT },
      ],
    },
  };
}

/** The attempt log's size now: where this step's part of it starts (label `ferry.log-start`). */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}
