/**
 * The `container` substrate: each step is one container on a Docker Engine API (Docker, or Podman's
 * API service), labelled as a migration (TR-38), run once with `RestartPolicy: no`, no health
 * check, and the declared peak as its hard memory + CPU limits.
 *
 * Where things live:
 * - tenant data: a named volume (the tenant's `data`, default `ferry-tenant-<id>`), mounted at
 *   /ferry/tenant. Never created, emptied or removed by Ferry, except that `restore` replaces its
 *   content with a snapshot's on an operator's action.
 * - scratch: volume `ferry-scratch-<migrationId>` at /ferry/scratch; snapshot: volume
 *   `ferry-snapshot-<migrationId>`, filled and read back by short helper containers.
 * - job: container `ferry-<migrationId>-a<attempt>-s<step>` (`-swipe` for the wipe step). What a
 *   re-attach needs is on the container itself (labels `ferry.log-path`, `ferry.log-start`,
 *   `ferry.timeout-ms`; start time from the engine), so `watch(ref)` works from a fresh process.
 * - stop intents (cancel, deadline): small marker files under `dataDir` (see stop-markers.ts).
 *
 * Confinement (issue #8): a job runs as its tenant's identity (`User: uid:gid` from
 * `tenant.runAs`) with all capabilities dropped, `no-new-privileges` and a pids limit; only the
 * tenant volume and its scratch are mounted (never the engine's socket), and its environment is
 * the job contract's variables and the request's `env`, nothing of Ferry's. A tenant with
 * `allowRoot` runs as 0:0 with the engine's default capabilities, still without new privileges
 * and with the pids limit. Tenant data is handed over to the identity by `adoptTenantData`;
 * scratch is made the identity's (mode 0700) when it is created. Helper containers (copy, chown)
 * run as root with only the capabilities their command needs, no network, no new privileges.
 */
import Docker from 'dockerode';
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { Identity, Resources, Tenant } from '../../core/types.ts';
import { jobLabels } from '../substrate.ts';
import type { ArtifactKind, IsolationSupport, LabelledObject, LimitsSupport, StepResult, StepSpec, Substrate } from '../substrate.ts';
import { resolveContainerOptions } from './container-options.ts';
import type { ContainerSubstrateConfig, ContainerSubstrateOptions } from './container-options.ts';
import { stepResultOf } from './container-result.ts';
import { engineMessage, isNotFound, isNotModified } from './engine-errors.ts';
import { FrameDemuxer, JobLog } from './job-log.ts';
import type { JobLogBound } from './job-log.ts';
import { StopMarkers } from './stop-markers.ts';

export type { ContainerSubstrateOptions } from './container-options.ts';

/** Where a job sees its data. */
export const TENANT_MOUNT = '/ferry/tenant';
export const SCRATCH_MOUNT = '/ferry/scratch';

const ROLE = 'ferry.role';
const LABEL_LOG_PATH = 'ferry.log-path';
const LABEL_LOG_START = 'ferry.log-start';
const LABEL_TIMEOUT_MS = 'ferry.timeout-ms';
const LABEL_LOG_LIMIT = 'ferry.log-limit';

/**
 * Roles of Ferry's containers: a step's job, a snapshot/restore copy helper, or a volume helper
 * (ownership of scratch and tenant data). All are removed as kind `job`.
 */
const JOB_ROLES: ReadonlySet<string> = new Set(['migration', 'snapshot-helper', 'volume-helper']);

/** What the engine accepts as a named volume: anything else (a host path, a socket) is refused. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Helpers run one short command; they never need many processes. */
const HELPER_PIDS_LIMIT = 64;

const NO_NEW_PRIVILEGES = 'no-new-privileges';

/** Grace for the log stream to drain after the container has exited. */
const LOG_DRAIN_MS = 2000;

type Labels = Record<string, string>;

export class ContainerSubstrate implements Substrate {
  readonly kind = 'container' as const;
  readonly #config: ContainerSubstrateConfig;
  readonly #docker: Docker;
  readonly #stops: StopMarkers;
  #capacity: Resources | null = null;
  /** Active watches, aborted by close() (the jobs keep running). */
  readonly #watches = new Set<AbortController>();

  constructor(options: ContainerSubstrateOptions) {
    this.#config = resolveContainerOptions(options);
    this.#docker = new Docker({ socketPath: this.#config.socketPath });
    this.#stops = new StopMarkers(this.#config.dataDir);
  }

  async init(): Promise<void> {
    const where = `unix://${this.#config.socketPath}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#docker.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.#config.pingTimeoutMs} ms`)), this.#config.pingTimeoutMs);
        }),
      ]);
      const info = (await this.#docker.info()) as { NCPU?: number; MemTotal?: number };
      this.#capacity = this.#config.capacity ?? Object.freeze({ cpu: (info.NCPU ?? 0) * 1000, memory: info.MemTotal ?? 0 });
    } catch (err) {
      throw new FerryError(
        'FERRY_INTERNAL',
        `container engine not answering at ${where} (${engineMessage(err)}); start Docker or Podman's API service (e.g. \`podman system service --time=0 ${where}\`, or .ci/setup-podman.sh), or point DOCKER_HOST / socketPath at the engine's socket`,
        { socketPath: this.#config.socketPath },
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    this.#stops.init();
  }

  capacity(): Resources {
    if (!this.#capacity) throw new Error('ContainerSubstrate: capacity() before init(); call init() first');
    return this.#capacity;
  }

  limits(): LimitsSupport {
    return { enforced: true, detail: 'docker engine API: memory + cpu quota + pids limit' };
  }

  isolation(): IsolationSupport {
    return {
      isolated: true,
      detail:
        `containers run as their tenant's uid:gid with all capabilities dropped, no-new-privileges and a pids limit (the peak's pids, else ${this.#config.defaultPidsLimit}); ` +
        'only the tenant volume and the scratch are mounted, never the engine socket; the environment is the job contract and the request env only; ' +
        'a tenant with allowRoot runs as root with the engine default capabilities, still without new privileges',
    };
  }

  enforcedDimensions(): readonly string[] {
    return ['cpu', 'memory', 'pids'];
  }

  tenantData(tenant: Tenant): string {
    return tenant.data || `ferry-tenant-${tenant.id}`;
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    return (await this.#volumeLabels(this.#tenantVolume(tenant))) !== null;
  }

  async adoptTenantData(tenant: Tenant): Promise<string | null> {
    const volume = this.#tenantVolume(tenant);
    if (!(await this.tenantDataExists(tenant))) return null;
    const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
    // -h and the default -P: symlinks are changed themselves, never followed (a tenant's link to
    // anything else in the helper's view must not hand that over).
    await this.#runHelper({
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

  scratchRef(migrationId: string): string {
    return `ferry-scratch-${safeName(migrationId)}`;
  }

  snapshotRef(migrationId: string): string {
    return `ferry-snapshot-${safeName(migrationId)}`;
  }

  jobRef(spec: StepSpec): string {
    const step = spec.stepIndex === -1 ? 'wipe' : String(spec.stepIndex);
    return `ferry-${safeName(spec.migrationId)}-a${spec.attempt}-s${step}`;
  }

  async createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void> {
    const meta = { migrationId: spec.migrationId, issue: spec.issue, tenantId: spec.tenant.id };
    await this.#ensureVolume(ref, 'scratch', meta);
    // The migration's own: its identity's, and nobody else's. Only the volume's root: a scratch
    // created again after a crash keeps what is in it.
    const { uid, gid } = checkedIdentity(spec.tenant.runAs, `tenant ${spec.tenant.id}'s runAs`);
    await this.#runHelper({
      name: `${ref}-own`,
      labels: { [ROLE]: 'volume-helper', 'ferry.migration': meta.migrationId, 'ferry.issue': meta.issue, 'ferry.tenant': meta.tenantId },
      script: `chmod 0700 /v && chown ${uid}:${gid} /v`,
      mounts: [{ Type: 'volume', Source: ref, Target: '/v' }],
      // FOWNER: chmod of a root already handed over, when createScratch runs again.
      capAdd: ['CHOWN', 'FOWNER'],
      what: `handing scratch volume ${ref} over to uid ${uid} gid ${gid}`,
    });
  }

  async snapshot(tenant: Tenant, ref: string, meta: { migrationId: string; issue: string }): Promise<void> {
    const source = this.#tenantVolume(tenant);
    if (!(await this.tenantDataExists(tenant))) {
      throw new FerryError('FERRY_NOT_FOUND', `cannot snapshot tenant ${tenant.id}: its data volume ${source} does not exist; create it or fix the tenant's data`);
    }
    await this.#ensureVolume(ref, 'snapshot', { migrationId: meta.migrationId, issue: meta.issue, tenantId: tenant.id });
    // The target is emptied first, so a snapshot retried after a crash holds one copy only.
    await this.#copyHelper(`${ref}-copy`, source, ref, { migrationId: meta.migrationId, issue: meta.issue, tenantId: tenant.id }, `snapshot of tenant ${tenant.id} (volume ${source}) into ${ref}`);
  }

  async restore(tenant: Tenant, ref: string): Promise<void> {
    const target = this.#tenantVolume(tenant);
    // Check everything before the tenant's data is touched: a missing snapshot must not leave it empty.
    const labels = await this.#volumeLabels(ref);
    if (labels === null) {
      throw new FerryError('FERRY_NOT_FOUND', `cannot restore tenant ${tenant.id}: snapshot volume ${ref} does not exist; the tenant's data was left as it is`);
    }
    if (labels[ROLE] !== 'snapshot' || labels['ferry.tenant'] !== tenant.id) {
      throw new FerryError('FERRY_CONFLICT', `refusing to restore tenant ${tenant.id} from volume ${ref}: it is not a Ferry snapshot of that tenant (labels ${JSON.stringify(labels)})`);
    }
    if (!(await this.tenantDataExists(tenant))) {
      throw new FerryError('FERRY_NOT_FOUND', `cannot restore tenant ${tenant.id}: its data volume ${target} does not exist; create it first`);
    }
    await this.#copyHelper(`${ref}-copy`, ref, target, { migrationId: labels['ferry.migration'] ?? '', issue: labels['ferry.issue'] ?? '', tenantId: tenant.id }, `restore of tenant ${tenant.id} (volume ${target}) from ${ref}`);
  }

  async start(spec: StepSpec, ref: string): Promise<void> {
    const image = spec.image ?? this.#config.defaultImage;
    if (!image) {
      throw new FerryError('FERRY_INVALID_REQUEST', `step ${spec.stepName} of migration ${spec.migrationId} names no image and the container substrate has no defaultImage; add \`image:\` to the request`);
    }
    const tenantVolume = this.#tenantVolume(spec.tenant);
    const user = jobUser(spec.tenant);
    // An engine creates a missing named volume on the fly: the job would then write into a new,
    // empty, unlabelled volume instead of the tenant's data. Refuse instead.
    if (!(await this.tenantDataExists(spec.tenant))) {
      throw new FerryError('FERRY_NOT_FOUND', `tenant ${spec.tenant.id}'s data volume ${tenantVolume} does not exist; create it (or fix the tenant's data) before running migration ${spec.migrationId}`);
    }
    const scratch = await this.#volumeLabels(spec.scratchRef);
    if (scratch === null || scratch[ROLE] !== 'scratch') {
      throw new FerryError('FERRY_NOT_FOUND', `scratch volume ${spec.scratchRef} of migration ${spec.migrationId} is missing; createScratch() first`);
    }
    if (!isAbsolute(spec.logPath)) throw new Error(`StepSpec.logPath must be absolute, got ${spec.logPath}`);

    const labels: Labels = {
      ...jobLabels(spec),
      [LABEL_LOG_PATH]: spec.logPath,
      [LABEL_LOG_START]: String(fileSize(spec.logPath)),
      [LABEL_LOG_LIMIT]: String(this.#config.logLimit),
    };
    if (spec.timeoutMs !== undefined) labels[LABEL_TIMEOUT_MS] = String(spec.timeoutMs);

    // Only the contract and the request's env: nothing of Ferry's own environment is passed on.
    const env = { ...spec.env, FERRY_TENANT_DATA: TENANT_MOUNT, FERRY_SCRATCH: SCRATCH_MOUNT };
    const [entry, ...args] = spec.argv;
    if (entry === undefined) throw new Error(`step ${spec.stepName} has an empty argv`);
    const memory = spec.limits['memory'];
    const cpu = spec.limits['cpu'];
    const pids = spec.limits['pids'] ?? this.#config.defaultPidsLimit;
    const create: Docker.ContainerCreateOptions = {
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
        ...(this.#config.cgroupParent ? { CgroupParent: this.#config.cgroupParent } : {}),
        // Exactly these two named volumes: no bind mount, so never the engine's socket.
        Mounts: [
          { Type: 'volume', Source: tenantVolume, Target: TENANT_MOUNT },
          { Type: 'volume', Source: spec.scratchRef, Target: SCRATCH_MOUNT },
        ],
      },
    };
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer(create);
    } catch (err) {
      if (isNotFound(err)) {
        await this.#pull(image, spec);
        container = await this.#docker.createContainer(create);
      } else if (engineStatusIs(err, 409)) {
        throw new FerryError('FERRY_CONFLICT', `job container ${ref} already exists; watch it (re-attach) or remove it, Ferry never runs a step twice`, { ref }, { cause: err });
      } else {
        throw new FerryError('FERRY_INTERNAL', `could not create job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
      }
    }
    try {
      await container.start();
    } catch (err) {
      throw new FerryError('FERRY_INTERNAL', `could not start job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
    }
  }

  async watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    const container = this.#docker.getContainer(ref);
    const first = await inspectOrNull(container);
    if (!first) return lost(ref, 'no longer exists on the engine');
    const labels: Labels = first.Config.Labels ?? {};
    if (labels[ROLE] !== 'migration') {
      throw new FerryError('FERRY_CONFLICT', `container ${ref} is not a Ferry migration job (label ${ROLE}=${labels[ROLE] ?? 'absent'})`);
    }
    if (first.State.Status === 'created' || first.State.Status === 'configured') {
      return lost(ref, 'was created but never started (the runner stopped in between); Ferry does not start it late');
    }
    const logPath = labels[LABEL_LOG_PATH];
    if (!logPath) throw new FerryError('FERRY_CONFLICT', `container ${ref} has no ${LABEL_LOG_PATH} label; it was not started by this substrate`);
    const timeoutMs = labels[LABEL_TIMEOUT_MS] ? Number(labels[LABEL_TIMEOUT_MS]) : null;
    const logStart = Number(labels[LABEL_LOG_START] ?? '0');
    // The limit the step started with, whatever this runner's logLimit is: a replay must compute
    // the same log as the first watch did (job-log.ts). A job started before the bound existed has
    // no label and is completed as it was begun, unbounded.
    const labelledLimit = Number(labels[LABEL_LOG_LIMIT] ?? NaN);
    const bound = Number.isInteger(labelledLimit) && labelledLimit > 0 ? { limit: labelledLimit } : undefined;

    const abort = new AbortController();
    this.#watches.add(abort);
    const log = new JobLog(logPath, logStart, onLine, bound);
    let deadline: NodeJS.Timeout | undefined;
    let output: { done: Promise<void>; cancel: () => void } | undefined;
    try {
      if (first.State.Running && timeoutMs !== null) {
        // Measured from the engine's start time, so a re-attach after a restart keeps the same deadline.
        const left = parseEngineTime(first.State.StartedAt) + timeoutMs - Date.now();
        deadline = setTimeout(() => void this.#stopFor(ref, 'deadline').catch(() => undefined), Math.max(0, left));
      }
      const waited = container.wait().then(
        () => 'exited' as const,
        (err: unknown) => (isNotFound(err) ? ('gone' as const) : Promise.reject(err)),
      );
      output = this.#follow(container, log, abort.signal);
      const end = await abortable(waited, abort.signal, ref);
      // Follow streams end on exit; wait a little for the last frames, never forever.
      await Promise.race([output.done, sleep(LOG_DRAIN_MS)]);
      output.cancel();
      if (end === 'gone') {
        // Its output is gone with it: no replay will ever complete the log, so end it with what came.
        log.close();
        return lost(ref, 'was removed while it ran');
      }
      // Podman's follow stream can end before it delivered a quickly exiting job's last lines (seen
      // under load: a checkpoint printed just before exit was missing). So the finished job's whole
      // output is read once more: the file gets only the bytes it lacks, and onLine only the lines
      // the follow stream did not deliver (the same frames in the same order, so a prefix of them).
      const delivered = log.lines;
      log.abandon();
      let replayed = 0;
      await this.#replay(container, logPath, logStart, bound, abort.signal, (line) => {
        if (++replayed > delivered) onLine(line);
      });
      const final = await inspectOrNull(container);
      if (!final) return lost(ref, 'was removed right after it ended');
      if (final.State.Running) throw new Error(`container ${ref} still running after wait returned`);
      return stepResultOf(
        {
          exitCode: final.State.ExitCode,
          oomKilled: final.State.OOMKilled,
          memoryLimit: final.HostConfig.Memory ?? null,
          timeoutMs,
        },
        this.#stops.read(ref),
      );
    } finally {
      clearTimeout(deadline);
      output?.cancel();
      this.#watches.delete(abort);
      // Abandon, not close: a watch that ends early (runner stopping, engine error) must not write a
      // half line or the end section; the next watch's replay writes them exactly once.
      log.abandon();
    }
  }

  async stop(ref: string): Promise<void> {
    const info = await inspectOrNull(this.#docker.getContainer(ref));
    if (!info) return;
    // A job that already ended keeps its own result: there is nothing to cancel.
    if (!info.State.Running && !info.State.Paused && info.State.Status !== 'created') return;
    if ((info.Config.Labels ?? {})[ROLE] !== 'migration') {
      throw new FerryError('FERRY_CONFLICT', `refusing to stop container ${ref}: it is not a Ferry migration job`);
    }
    await this.#stopFor(ref, 'cancelled');
  }

  async remove(kind: ArtifactKind, ref: string): Promise<void> {
    switch (kind) {
      case 'job': {
        const container = this.#docker.getContainer(ref);
        const info = await inspectOrNull(container);
        if (info) {
          const role = (info.Config.Labels ?? {})[ROLE];
          if (role === undefined || !JOB_ROLES.has(role)) {
            throw new FerryError('FERRY_CONFLICT', `refusing to remove container ${ref}: it carries no Ferry job label (${ROLE}=${role ?? 'absent'}); it is not Ferry's`, { kind, ref });
          }
          try {
            // v: anonymous volumes of the image go with it; named volumes (tenant, scratch) never do.
            await container.remove({ force: true, v: true });
          } catch (err) {
            if (!isNotFound(err)) throw new FerryError('FERRY_INTERNAL', `could not remove container ${ref}: ${engineMessage(err)}`, { kind, ref }, { cause: err });
          }
        }
        this.#stops.delete(ref);
        return;
      }
      case 'scratch':
      case 'snapshot': {
        const labels = await this.#volumeLabels(ref);
        if (labels === null) return;
        if (labels[ROLE] !== kind) {
          throw new FerryError('FERRY_CONFLICT', `refusing to remove volume ${ref} as ${kind}: it carries ${ROLE}=${labels[ROLE] ?? 'absent'}; Ferry only removes its own ${kind} volumes, never tenant data`, { kind, ref });
        }
        try {
          // Never `force`: on Podman that would also remove the containers using the volume.
          await this.#docker.getVolume(ref).remove();
        } catch (err) {
          if (isNotFound(err)) return;
          if (engineStatusIs(err, 409)) {
            throw new FerryError('FERRY_CONFLICT', `volume ${ref} is still used by a container; remove the migration's job containers first`, { kind, ref }, { cause: err });
          }
          throw new FerryError('FERRY_INTERNAL', `could not remove volume ${ref}: ${engineMessage(err)}`, { kind, ref }, { cause: err });
        }
        return;
      }
      case 'log': {
        if (!isAbsolute(ref)) throw new FerryError('FERRY_BAD_REQUEST', `log ref must be an absolute host path, got ${ref}`);
        let isFile: boolean;
        try {
          isFile = statSync(ref).isFile();
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw err;
        }
        if (!isFile) throw new FerryError('FERRY_CONFLICT', `refusing to remove log ${ref}: it is not a regular file`, { kind, ref });
        await rm(ref, { force: true });
        return;
      }
    }
  }

  async listLabelled(): Promise<LabelledObject[]> {
    const out: LabelledObject[] = [];
    const containers = await this.#docker.listContainers({ all: true, filters: { label: [ROLE] } });
    for (const c of containers) {
      const labels = c.Labels ?? {};
      const role = labels[ROLE];
      const name = (c.Names?.[0] ?? c.Id).replace(/^\//, '');
      // A tenant's adopt helper belongs to no migration: it is removed by the next adoption.
      if (role !== undefined && JOB_ROLES.has(role) && labels['ferry.migration']) out.push(labelled('job', name, labels));
    }
    const volumes = (await this.#docker.listVolumes({ filters: { label: [ROLE] } })).Volumes ?? [];
    for (const v of volumes) {
      const labels = (v.Labels ?? {}) as Labels;
      const role = labels[ROLE];
      if (role === 'scratch' || role === 'snapshot') out.push(labelled(role, v.Name, labels));
    }
    return out;
  }

  async close(): Promise<void> {
    for (const watch of this.#watches) watch.abort();
    this.#watches.clear();
  }

  // --- internals ---

  async #stopFor(ref: string, cause: 'cancelled' | 'deadline'): Promise<void> {
    // The intent is recorded before the engine acts, so a restart in between still knows why.
    this.#stops.write(ref, cause, new Date());
    try {
      await this.#docker.getContainer(ref).stop({ t: this.#config.stopGraceSeconds });
    } catch (err) {
      if (isNotFound(err) || isNotModified(err)) return;
      if (cause === 'deadline') return; // fired from a timer; the watch reports what happens next
      throw new FerryError('FERRY_INTERNAL', `could not stop job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
    }
  }

  /**
   * The whole output of a finished container, through a fresh JobLog (which appends only what the
   * file lacks). Streamed, not buffered: a job may have printed gigabytes.
   */
  async #replay(container: Docker.Container, logPath: string, logStart: number, bound: JobLogBound | undefined, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
        // dockerode's logs() buffers the whole answer unless it follows; dial it as a stream instead.
        this.#docker.modem.dial(
          {
            path: `/containers/${container.id}/logs?`,
            method: 'GET',
            isStream: true,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
            options: { follow: false, stdout: true, stderr: true },
          },
          (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
        );
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const log = new JobLog(logPath, logStart, onLine, bound);
    let complete = false;
    // A long output takes the engine a while to serve (Podman 4.3: about 3 MB/s): close() must not wait for it.
    const onAbort = (): void => (stream as { destroy?: () => void }).destroy?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const demux = new FrameDemuxer((s, data) => log.push(s, data));
      for await (const chunk of stream as AsyncIterable<Buffer | string>) {
        if (signal.aborted) break;
        demux.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      }
      if (signal.aborted) throw closedError(container.id);
      complete = true;
    } catch (err) {
      if (signal.aborted) throw closedError(container.id);
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      // Only a replay read to its end may write the end section; otherwise the next watch does.
      if (complete) log.close();
      else log.abandon();
    }
  }

  #follow(container: Docker.Container, log: JobLog, signal: AbortSignal): { done: Promise<void>; cancel: () => void } {
    let stream: NodeJS.ReadableStream | null = null;
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
      (stream as { destroy?: () => void } | null)?.destroy?.();
    };
    signal.addEventListener('abort', cancel, { once: true });
    const done = (async (): Promise<void> => {
      try {
        stream = await container.logs({ follow: true, stdout: true, stderr: true });
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      if (cancelled) return cancel();
      const demux = new FrameDemuxer((s, data) => log.push(s, data));
      await new Promise<void>((resolve) => {
        stream?.on('data', (chunk: Buffer) => demux.push(chunk));
        stream?.on('end', resolve);
        stream?.on('close', resolve);
        // A broken log stream does not decide the step's result; the exit status does.
        stream?.on('error', () => resolve());
      });
    })();
    return { done: done.catch(() => undefined), cancel };
  }

  async #pull(image: string, spec: StepSpec): Promise<void> {
    try {
      const stream = await this.#docker.pull(image);
      await new Promise<void>((resolve, reject) => this.#docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      throw new FerryError('FERRY_NOT_FOUND', `image ${image} of migration ${spec.migrationId} is not on the engine and could not be pulled (${engineMessage(err)}); load or build it on the engine, or fix \`image:\``, { image }, { cause: err });
    }
  }

  /** Labels of a volume, or null when it does not exist. */
  async #volumeLabels(name: string): Promise<Labels | null> {
    try {
      const info = await this.#docker.getVolume(name).inspect();
      return (info.Labels ?? {}) as Labels;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async #ensureVolume(name: string, role: 'scratch' | 'snapshot', meta: { migrationId: string; issue: string; tenantId: string }): Promise<void> {
    const existing = await this.#volumeLabels(name);
    if (existing === null) {
      await this.#docker.createVolume({
        Name: name,
        Labels: { [ROLE]: role, 'ferry.migration': meta.migrationId, 'ferry.issue': meta.issue, 'ferry.tenant': meta.tenantId },
      });
      return;
    }
    // Engines answer "create" on an existing name with the existing volume: check it is ours.
    if (existing[ROLE] !== role || existing['ferry.migration'] !== meta.migrationId) {
      throw new FerryError('FERRY_CONFLICT', `volume ${name} already exists and is not the ${role} of migration ${meta.migrationId} (labels ${JSON.stringify(existing)}); remove or rename it`);
    }
  }

  /** Empty `to`, then copy `from` into it, in a one-shot helper container that is removed after. */
  async #copyHelper(name: string, from: string, to: string, meta: { migrationId: string; issue: string; tenantId: string }, what: string): Promise<void> {
    await this.#runHelper({
      name,
      labels: { [ROLE]: 'snapshot-helper', 'ferry.migration': meta.migrationId, 'ferry.issue': meta.issue, 'ferry.tenant': meta.tenantId },
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
  async #runHelper(h: { name: string; labels: Labels; script: string; mounts: Docker.MountConfig; capAdd: readonly string[]; what: string }): Promise<void> {
    const image = this.#config.defaultImage;
    if (!image) throw new FerryError('FERRY_INTERNAL', `${h.what} needs the container substrate's defaultImage (an image with sh, rm, cp, chown and chmod)`);
    await this.remove('job', h.name); // a helper left behind by a crash
    const container = await this.#docker.createContainer({
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
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      if (StatusCode !== 0) {
        const output = await container.logs({ stdout: true, stderr: true, follow: false, tail: 20 });
        const text = demuxAll(output).trim().slice(-2000);
        throw new FerryError('FERRY_INTERNAL', `${h.what} failed: helper container exited with status ${StatusCode}: ${text || '(no output)'}`);
      }
    } finally {
      await container.remove({ force: true, v: true }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  }

  /** The tenant's volume name, refused unless it is one: never a host path (a socket, a folder) to mount. */
  #tenantVolume(tenant: Tenant): string {
    const name = this.tenantData(tenant);
    if (!VOLUME_NAME.test(name)) {
      throw new FerryError('FERRY_INVALID_REQUEST', `tenant ${tenant.id}'s data ${JSON.stringify(name)} is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); the container substrate mounts named volumes only, never host paths`, { tenant: tenant.id });
    }
    return name;
  }
}

/** `User` of a tenant's job: its identity, or root when the tenant is allowed it. */
function jobUser(tenant: Tenant): string {
  if (tenant.allowRoot) return '0:0';
  const { uid, gid } = checkedIdentity(tenant.runAs, `tenant ${tenant.id}'s runAs`);
  if (uid === 0 || gid === 0) {
    throw new FerryError('FERRY_INVALID_REQUEST', `tenant ${tenant.id} would run its jobs as uid ${uid} gid ${gid} (root) but is not allowed root; give it another runAs, or set allowRoot`, { tenant: tenant.id });
  }
  return `${uid}:${gid}`;
}

function checkedIdentity(identity: Identity | undefined, what: string): Identity {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 2 ** 32 - 1;
  if (!identity || !ok(identity.uid) || !ok(identity.gid)) {
    throw new FerryError('FERRY_INVALID_REQUEST', `${what} must be {uid, gid} with whole numbers >= 0, got ${JSON.stringify(identity)}`);
  }
  return identity;
}

function labelled(kind: ArtifactKind, ref: string, labels: Labels): LabelledObject {
  return { kind, ref, migrationId: labels['ferry.migration'] ?? '', issue: labels['ferry.issue'] ?? '' };
}

function lost(ref: string, why: string): StepResult {
  return { exitCode: null, signal: null, cause: 'lost', detail: `job container ${ref} ${why}; its result is unknown` };
}

/** Container and volume names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. */
function safeName(id: string): string {
  return id.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

async function inspectOrNull(container: Docker.Container): Promise<Docker.ContainerInspectInfo | null> {
  try {
    return await container.inspect();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

function engineStatusIs(err: unknown, status: number): boolean {
  return typeof err === 'object' && err !== null && (err as { statusCode?: unknown }).statusCode === status;
}

/** Engines report nanoseconds (`...32.052591482Z`); Date.parse wants at most milliseconds. */
function parseEngineTime(value: string): number {
  const ms = Date.parse(value.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? Date.now() : ms;
}

/** What a pending watch rejects with on close() (Substrate.close): FERRY_INTERNAL, "substrate closed". */
function closedError(ref: string): FerryError {
  return new FerryError('FERRY_INTERNAL', `watch of ${ref} ended: the container substrate was closed; the job keeps running and the next runner re-attaches to it`, { ref });
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal, ref: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(closedError(ref));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function demuxAll(buf: Buffer): string {
  const parts: Buffer[] = [];
  new FrameDemuxer((_s, data) => parts.push(data)).push(buf);
  return Buffer.concat(parts).toString('utf8');
}
