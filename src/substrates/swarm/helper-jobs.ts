/**
 * What lives on a tenant's node (scratch and snapshot volumes, the tenant volume's owner and
 * content) is made and changed by short one-shot helper services placed on that node, because the
 * manager's API reaches only its own engine's volumes. A volume a helper mounts is created there by
 * the node's engine, with Ferry's labels (`VolumeOptions.Labels`), if it does not exist yet.
 *
 * A helper runs one `sh -c` as root with all capabilities dropped but those its command needs, a
 * small pids limit, restart condition `none`; it is removed once it ended, and one left by a crash
 * (same name) is removed before it is run again.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import type { Tenant } from '../../core/types.ts';
import { ROLE } from '../container/container-labels.ts';
import type { Labels } from '../container/container-labels.ts';
import { checkedIdentity } from '../container/job-container-spec.ts';
import { FrameDemuxer } from '../container/job-log.ts';
import { engineMessage, isNotFound } from '../container/engine-errors.ts';
import type { VolumeOwner } from '../container/volumes.ts';
import { NO_RESTART, ONE_SHOT_MODE } from './job-service-spec.ts';
import { FINAL_TASK_STATES, removeTaskContainers, serviceInfo, sleep, tasksOf } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';

const HELPER_PIDS_LIMIT = 64;
/** How long a helper may take from creation to its end (placement, start, copy). */
const HELPER_TIMEOUT_MS = 10 * 60_000;
const COPY_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID'];

export type HelperRole = 'snapshot-helper' | 'volume-helper' | 'node-agent';
/** Every helper's container carries it, so an agent can prune the exited ones a node keeps. */
export const HELPER_LABEL = 'ferry.helper';
/** Most output a helper's answer may have (a node agent's volume list). */
const HELPER_OUTPUT_LIMIT = 1024 * 1024;

export type HelperMount =
  | {
      readonly volume: string;
      readonly target: string;
      /** Labels the node's engine gives the volume if the mount creates it (scratch, snapshot). */
      readonly createAs?: Labels | undefined;
    }
  | { readonly bind: string; readonly target: string };

export function ownerLabels(role: 'scratch' | 'snapshot', owner: VolumeOwner): Labels {
  return { [ROLE]: role, 'ferry.migration': owner.migrationId, 'ferry.issue': owner.issue, 'ferry.tenant': owner.tenantId };
}

/** A helper's labels; `ferry.helper` names the Ferry that runs it (SwarmEngine.instance). */
function helperLabels(role: HelperRole, owner: VolumeOwner, instance: string): Labels {
  return { [ROLE]: role, [HELPER_LABEL]: instance, 'ferry.migration': owner.migrationId, 'ferry.issue': owner.issue, 'ferry.tenant': owner.tenantId };
}

/** Scratch: created on the node by the helper's mount, made the tenant identity's, mode 0700. */
export async function createScratchOnNode(engine: SwarmEngine, ref: string, tenant: Tenant, constraint: string, owner: VolumeOwner): Promise<void> {
  const { uid, gid } = tenant.allowRoot ? { uid: 0, gid: 0 } : checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  await runHelperJob(engine, {
    name: `${ref}-own`,
    role: 'volume-helper',
    owner,
    constraint,
    mounts: [{ volume: ref, target: '/v', createAs: ownerLabels('scratch', owner) }],
    script: `chmod 0700 /v && chown ${uid}:${gid} /v`,
    capAdd: ['CAP_CHOWN', 'CAP_FOWNER'],
    what: `scratch ${ref} for tenant ${tenant.id}`,
  });
}

/**
 * Copy a volume's content into another on the node, the target emptied first (a retried copy holds
 * one copy). `cp -a` keeps owners, modes and times. With `requireMarker`, the source must hold
 * Ferry's completion marker, or nothing is touched (exit 3): a missing or half-made snapshot never
 * replaces the tenant's data. With `writeMarker`, the marker is written last.
 */
export async function copyOnNode(
  engine: SwarmEngine,
  c: {
    name: string;
    from: string;
    to: string;
    constraint: string;
    owner: VolumeOwner;
    createTo?: Labels;
    requireMarker: boolean;
    writeMarker: boolean;
    what: string;
  },
): Promise<void> {
  const check = c.requireMarker ? `[ -e /from/${SNAPSHOT_MARKER} ] || { echo "no complete Ferry snapshot in this volume" >&2; exit 3; }; ` : '';
  const exclude = c.requireMarker ? ` && rm -f /to/${SNAPSHOT_MARKER}` : '';
  const mark = c.writeMarker ? ` && touch /to/${SNAPSHOT_MARKER}` : '';
  await runHelperJob(engine, {
    name: c.name,
    role: 'snapshot-helper',
    owner: c.owner,
    constraint: c.constraint,
    mounts: [
      { volume: c.from, target: '/from' },
      { volume: c.to, target: '/to', createAs: c.createTo },
    ],
    script: `${check}rm -rf /to/..?* /to/.[!.]* /to/* && cp -a /from/. /to/${exclude}${mark}`,
    capAdd: COPY_CAPS,
    what: c.what,
  });
}

/** Marker file at the root of a snapshot volume, written once the copy is complete. */
export const SNAPSHOT_MARKER = '.ferry-snapshot-complete';

export async function adoptOnNode(engine: SwarmEngine, tenant: Tenant, volume: string, constraint: string): Promise<string> {
  const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  await runHelperJob(engine, {
    name: `ferry-adopt-${tenant.id.replace(/[^a-zA-Z0-9_.-]/g, '-')}-${engine.instance}`,
    role: 'volume-helper',
    owner: { migrationId: '', issue: '', tenantId: tenant.id },
    constraint,
    mounts: [{ volume, target: '/v' }],
    script: `chown -R -h ${uid}:${gid} /v`,
    capAdd: ['CAP_CHOWN', 'CAP_DAC_READ_SEARCH'],
    what: `adoption of tenant ${tenant.id}'s volume ${volume}`,
  });
  return `volume ${volume} on the tenant's swarm node (${constraint}) handed over to uid ${uid} gid ${gid}`;
}

export async function runHelperJob(
  engine: SwarmEngine,
  h: {
    name: string;
    role: HelperRole;
    owner: VolumeOwner;
    constraint: string;
    mounts: readonly HelperMount[];
    script: string;
    capAdd: readonly string[];
    what: string;
    /** Default: the substrate's defaultImage (sh, rm, cp, chown, chmod). */
    image?: string;
  },
): Promise<string> {
  const image = h.image ?? engine.config.defaultImage;
  if (!image) throw new FerryError('FERRY_INTERNAL', `${h.what} needs the swarm substrate's defaultImage (an image with sh, rm, cp, chown and chmod)`);
  await removeHelper(engine, h.name); // a helper left behind by a crash
  const labels = helperLabels(h.role, h.owner, engine.instance);
  const spec = {
    Name: h.name,
    Labels: labels,
    Mode: ONE_SHOT_MODE,
    TaskTemplate: {
      ContainerSpec: {
        Image: image,
        Command: ['sh'],
        Args: ['-c', h.script],
        Env: [],
        User: '0:0',
        Labels: labels,
        HealthCheck: { Test: ['NONE'] },
        CapabilityDrop: ['ALL'],
        CapabilityAdd: [...h.capAdd],
        Mounts: h.mounts.map((m) =>
          'bind' in m
            ? { Type: 'bind', Source: m.bind, Target: m.target }
            : { Type: 'volume', Source: m.volume, Target: m.target, ...(m.createAs ? { VolumeOptions: { Labels: m.createAs } } : {}) },
        ),
      },
      Resources: { Limits: { Pids: HELPER_PIDS_LIMIT } },
      RestartPolicy: NO_RESTART,
      Placement: { Constraints: [h.constraint] },
    },
  } as unknown as Docker.CreateServiceOptions;
  let created: Docker.Service;
  try {
    created = await engine.docker.createService(spec);
  } catch (err) {
    throw new FerryError('FERRY_INTERNAL', `${h.what} failed: the swarm refused its helper service: ${engineMessage(err)}`, { name: h.name }, { cause: err });
  }
  try {
    const deadline = Date.now() + HELPER_TIMEOUT_MS;
    for (;;) {
      const [task] = await tasksOf(engine.docker, created.id);
      const state = task?.Status?.State ?? 'new';
      if (FINAL_TASK_STATES.has(state)) {
        const exit = task?.Status?.ContainerStatus?.ExitCode;
        const output = await helperOutput(engine.docker, created.id);
        if (state === 'complete') return output;
        throw new FerryError(
          'FERRY_INTERNAL',
          `${h.what} failed: helper service ${h.name} ended ${state}${exit !== undefined ? ` with status ${exit}` : ''} (${task?.Status?.Err ?? task?.Status?.Message ?? ''}): ${output.slice(-2000) || '(no output)'}`,
          { name: h.name, exitCode: exit ?? null },
        );
      }
      if (Date.now() > deadline) {
        throw new FerryError(
          'FERRY_INTERNAL',
          `${h.what} did not end within ${HELPER_TIMEOUT_MS / 1000} s: helper service ${h.name} is ${state} (${task?.Status?.Err ?? task?.Status?.Message ?? ''}); is the tenant's node (${h.constraint}) in the swarm and active?`,
          { name: h.name },
        );
      }
      await sleep(engine.config.pollMs);
    }
  } finally {
    await removeHelper(engine, h.name);
  }
}

async function removeHelper(engine: SwarmEngine, name: string): Promise<void> {
  const docker = engine.docker;
  const info = await serviceInfo(docker, name);
  if (!info) return;
  const role = info.Spec.Labels?.[ROLE];
  if (role !== 'snapshot-helper' && role !== 'volume-helper' && role !== 'node-agent') {
    throw new FerryError('FERRY_CONFLICT', `refusing to remove service ${name}: it is not a Ferry helper (${ROLE}=${role ?? 'absent'})`);
  }
  const tasks = await tasksOf(docker, info.ID);
  try {
    await docker.getService(info.ID).remove();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await removeTaskContainers(engine, tasks);
}

/** A finished helper's output (stdout and stderr), at most HELPER_OUTPUT_LIMIT bytes of its end. */
async function helperOutput(docker: Docker, serviceId: string): Promise<string> {
  try {
    const raw = (await docker.getService(serviceId).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    const parts: Buffer[] = [];
    new FrameDemuxer((_s, data) => parts.push(data)).push(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
    return Buffer.concat(parts).subarray(-HELPER_OUTPUT_LIMIT).toString('utf8').trim();
  } catch {
    return '';
  }
}

/** At start: the helper services this Ferry left behind when it was killed (a helper never outlives its caller). */
export async function removeLeftHelpers(engine: SwarmEngine): Promise<void> {
  const services = (await engine.docker.listServices({ filters: { label: [`${HELPER_LABEL}=${engine.instance}`] } })) as Array<{ Spec?: { Name?: string } }>;
  for (const s of services) if (s.Spec?.Name) await removeHelper(engine, s.Spec.Name);
}
