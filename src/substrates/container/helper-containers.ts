/**
 * Short one-shot helper containers that do what a job may not: hand the tenant's data and a
 * scratch over to the tenant's identity, and copy a volume for a snapshot or a restore. Each runs
 * one command as root (`defaultImage`) with all capabilities dropped but the few its command needs,
 * no network, no new privileges and a small pids limit, and is removed after.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { ROLE, safeName } from './container-labels.ts';
import type { Labels } from './container-labels.ts';
import { inspectOrNull } from './container-engine.ts';
import type { ContainerEngine } from './container-engine.ts';
import { untilEnded } from './container-exit.ts';
import { isNotFound } from './engine-errors.ts';
import { checkedIdentity, NO_NEW_PRIVILEGES } from './job-container-spec.ts';
import { FrameDemuxer } from './job-log.ts';
import { removeJobContainer } from './labelled-artifacts.ts';
import type { VolumeOwner } from './volumes.ts';

/** Helpers run one short command; they never need many processes. */
const HELPER_PIDS_LIMIT = 64;

/** Hand the tenant's data volume over to its `runAs` identity; says what was done. */
export async function adoptVolume(engine: ContainerEngine, tenant: Tenant, volume: string): Promise<string> {
  const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  // -h and the default -P: symlinks are changed themselves, never followed (a tenant's link to
  // anything else in the helper's view must not hand that over).
  await runHelper(engine, {
    name: `ferry-adopt-${safeName(tenant.id)}`,
    labels: { [ROLE]: 'volume-helper', 'ferry.tenant': tenant.id },
    script: `chown -R -h ${uid}:${gid} /v`,
    mounts: [{ Type: 'volume', Source: volume, Target: '/v' }],
    // Reading folders of any mode needs DAC_READ_SEARCH; changing owners needs CHOWN. Nothing else.
    capAdd: ['CHOWN', 'DAC_READ_SEARCH'],
    what: `handing volume ${volume} of tenant ${tenant.id} over to uid ${uid} gid ${gid}`,
  });
  return `handed volume ${volume} over to uid ${uid} gid ${gid}`;
}

/** Make a scratch volume's root the tenant identity's, mode 0700. */
export async function ownScratch(engine: ContainerEngine, ref: string, tenant: Tenant, owner: VolumeOwner): Promise<void> {
  // The migration's own: its identity's, and nobody else's. Only the volume's root: a scratch
  // created again after a crash keeps what is in it.
  const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  await runHelper(engine, {
    name: `${ref}-own`,
    labels: { [ROLE]: 'volume-helper', 'ferry.migration': owner.migrationId, 'ferry.issue': owner.issue, 'ferry.tenant': owner.tenantId },
    script: `chmod 0700 /v && chown ${uid}:${gid} /v`,
    mounts: [{ Type: 'volume', Source: ref, Target: '/v' }],
    // FOWNER: chmod of a root already handed over, when createScratch runs again.
    capAdd: ['CHOWN', 'FOWNER'],
    what: `handing scratch volume ${ref} over to uid ${uid} gid ${gid}`,
  });
}

/** Empty `to`, then copy `from` into it, in a one-shot helper container that is removed after. */
export async function copyVolume(engine: ContainerEngine, name: string, from: string, to: string, owner: VolumeOwner, what: string): Promise<void> {
  await runHelper(engine, {
    name,
    labels: { [ROLE]: 'snapshot-helper', 'ferry.migration': owner.migrationId, 'ferry.issue': owner.issue, 'ferry.tenant': owner.tenantId },
    // Globs that match nothing stay literal and `rm -f` ignores them; .[!.]* and ..?* catch dotfiles.
    // cp -a keeps owners, modes and times: a restore leaves every file owned as in the snapshot.
    script: 'rm -rf /to/..?* /to/.[!.]* /to/* && cp -a /from/. /to/',
    mounts: [
      { Type: 'volume', Source: from, Target: '/from', ReadOnly: true },
      { Type: 'volume', Source: to, Target: '/to' },
    ],
    // Files of any owner and mode: read and remove them (DAC_OVERRIDE), give them their owner
    // (CHOWN), then their modes and times (FOWNER), setgid bits included (FSETID).
    capAdd: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'],
    what,
  });
}

/**
 * One short command as root in a helper container that is removed after: all capabilities
 * dropped but `capAdd`, no new privileges, no network, a small pids limit.
 */
async function runHelper(
  engine: ContainerEngine,
  h: { name: string; labels: Labels; script: string; mounts: Docker.MountConfig; capAdd: readonly string[]; what: string },
): Promise<void> {
  const image = engine.config.defaultImage;
  if (!image) throw new FerryError('FERRY_INTERNAL', `${h.what} needs the container substrate's defaultImage (an image with sh, rm, cp, chown and chmod)`);
  await removeJobContainer(engine, h.name); // a helper left behind by a crash
  const container = await engine.docker.createContainer({
    name: h.name,
    Image: image,
    Entrypoint: ['sh'],
    Cmd: ['-c', h.script],
    Env: [],
    User: '0:0',
    Labels: h.labels,
    Healthcheck: { Test: ['NONE'] },
    HostConfig: {
      RestartPolicy: { Name: 'no' },
      NetworkMode: 'none',
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: [...h.capAdd],
      SecurityOpt: [NO_NEW_PRIVILEGES],
      PidsLimit: HELPER_PIDS_LIMIT,
      Mounts: h.mounts,
    },
  });
  try {
    await container.start();
    const ended = (await untilEnded(container, new AbortController().signal)) ? await inspectOrNull(container) : null;
    if (!ended) throw new FerryError('FERRY_INTERNAL', `${h.what} failed: helper container ${h.name} was removed while it ran`);
    const status = ended.State.ExitCode;
    if (status !== 0) {
      const output = await container.logs({ stdout: true, stderr: true, follow: false, tail: 20 });
      const text = demuxAll(output).trim().slice(-2000);
      throw new FerryError('FERRY_INTERNAL', `${h.what} failed: helper container exited with status ${status}: ${text || '(no output)'}`);
    }
  } finally {
    await container.remove({ force: true, v: true }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}

function demuxAll(buf: Buffer): string {
  const parts: Buffer[] = [];
  new FrameDemuxer((_s, data) => parts.push(data)).push(buf);
  return Buffer.concat(parts).toString('utf8');
}
