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
import { FerryError } from '../../core/errors.ts';
import { WIPE_STEP } from '../../core/steps.ts';
import type { Resources, Tenant } from '../../core/types.ts';
import type { ArtifactKind, IsolationSupport, LabelledObject, LimitsSupport, StepResult, StepSpec, Substrate } from '../substrate.ts';
import { ROLE, safeName } from './container-labels.ts';
import type { ContainerEngine } from './container-engine.ts';
import { resolveContainerOptions } from './container-options.ts';
import type { ContainerSubstrateConfig, ContainerSubstrateOptions } from './container-options.ts';
import { engineMessage } from './engine-errors.ts';
import { adoptVolume, copyVolume, ownScratch } from './helper-containers.ts';
import { startJob } from './job-start.ts';
import { cancelJob } from './job-stop.ts';
import { watchJob } from './job-watch.ts';
import { listLabelled, removeArtifact } from './labelled-artifacts.ts';
import { StopMarkers } from './stop-markers.ts';
import { ensureVolume, tenantDataName, tenantVolume, volumeLabels } from './volumes.ts';

export type { ContainerSubstrateOptions } from './container-options.ts';
export { SCRATCH_MOUNT, TENANT_MOUNT } from './job-container-spec.ts';

/** The Substrate API; the work is done in the files that README.md in this folder lists under "Files". */
export class ContainerSubstrate implements Substrate {
  readonly kind = 'container' as const;
  readonly #config: ContainerSubstrateConfig;
  readonly #docker: Docker;
  readonly #engine: ContainerEngine;
  #capacity: Resources | null = null;
  /** Active watches, aborted by close() (the jobs keep running). */
  readonly #watches = new Set<AbortController>();

  constructor(options: ContainerSubstrateOptions) {
    this.#config = resolveContainerOptions(options);
    this.#docker = new Docker({ socketPath: this.#config.socketPath });
    this.#engine = { docker: this.#docker, config: this.#config, stops: new StopMarkers(this.#config.dataDir) };
  }

  async init(): Promise<void> {
    const where = `unix://${this.#config.socketPath}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#docker.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new FerryError('FERRY_ENGINE_UNAVAILABLE', `no answer within ${this.#config.pingTimeoutMs} ms`)),
            this.#config.pingTimeoutMs,
          );
        }),
      ]);
      const info = (await this.#docker.info()) as { NCPU?: number; MemTotal?: number };
      this.#capacity = this.#config.capacity ?? Object.freeze({ cpu: (info.NCPU ?? 0) * 1000, memory: info.MemTotal ?? 0 });
    } catch (err) {
      throw new FerryError(
        'FERRY_ENGINE_UNAVAILABLE',
        `container engine not answering at ${where} (${engineMessage(err)}); start Docker or Podman's API service (e.g. \`podman system service --time=0 ${where}\`, or .ci/setup-podman.sh), or point DOCKER_HOST / socketPath at the engine's socket`,
        { socketPath: this.#config.socketPath },
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    this.#engine.stops.init();
  }

  capacity(): Resources {
    if (!this.#capacity) throw new FerryError('FERRY_INTERNAL', 'ContainerSubstrate: capacity() before init(); call init() first');
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
    return tenantDataName(tenant);
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    return (await volumeLabels(this.#docker, tenantVolume(tenant))) !== null;
  }

  async adoptTenantData(tenant: Tenant): Promise<string | null> {
    const volume = tenantVolume(tenant);
    if (!(await this.tenantDataExists(tenant))) return null;
    return adoptVolume(this.#engine, tenant, volume);
  }

  scratchRef(migrationId: string): string {
    return `ferry-scratch-${safeName(migrationId)}`;
  }

  snapshotRef(migrationId: string): string {
    return `ferry-snapshot-${safeName(migrationId)}`;
  }

  jobRef(spec: StepSpec): string {
    // The index, not the 1-based number people read: names of running jobs must not change.
    const step = spec.stepIndex === WIPE_STEP ? 'wipe' : String(spec.stepIndex);
    return `ferry-${safeName(spec.migrationId)}-a${spec.attempt}-s${step}`;
  }

  async createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void> {
    const owner = { migrationId: spec.migrationId, issue: spec.issue, tenantId: spec.tenant.id };
    await ensureVolume(this.#docker, ref, 'scratch', owner);
    await ownScratch(this.#engine, ref, spec.tenant, owner);
  }

  async snapshot(tenant: Tenant, ref: string, meta: { migrationId: string; issue: string }): Promise<void> {
    const source = tenantVolume(tenant);
    if (!(await this.tenantDataExists(tenant))) {
      throw new FerryError(
        'FERRY_NOT_FOUND',
        `cannot snapshot tenant ${tenant.id}: its data volume ${source} does not exist; create it or fix the tenant's data`,
      );
    }
    const owner = { migrationId: meta.migrationId, issue: meta.issue, tenantId: tenant.id };
    await ensureVolume(this.#docker, ref, 'snapshot', owner);
    // The target is emptied first, so a snapshot retried after a crash holds one copy only.
    await copyVolume(this.#engine, `${ref}-copy`, source, ref, owner, `snapshot of tenant ${tenant.id} (volume ${source}) into ${ref}`);
  }

  async restore(tenant: Tenant, ref: string): Promise<void> {
    const target = tenantVolume(tenant);
    // Check everything before the tenant's data is touched: a missing snapshot must not leave it empty.
    const labels = await volumeLabels(this.#docker, ref);
    if (labels === null) {
      throw new FerryError('FERRY_NOT_FOUND', `cannot restore tenant ${tenant.id}: snapshot volume ${ref} does not exist; the tenant's data was left as it is`);
    }
    if (labels[ROLE] !== 'snapshot' || labels['ferry.tenant'] !== tenant.id) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `refusing to restore tenant ${tenant.id} from volume ${ref}: it is not a Ferry snapshot of that tenant (labels ${JSON.stringify(labels)})`,
      );
    }
    if (!(await this.tenantDataExists(tenant))) {
      throw new FerryError('FERRY_NOT_FOUND', `cannot restore tenant ${tenant.id}: its data volume ${target} does not exist; create it first`);
    }
    const owner = { migrationId: labels['ferry.migration'] ?? '', issue: labels['ferry.issue'] ?? '', tenantId: tenant.id };
    await copyVolume(this.#engine, `${ref}-copy`, ref, target, owner, `restore of tenant ${tenant.id} (volume ${target}) from ${ref}`);
  }

  start(spec: StepSpec, ref: string): Promise<void> {
    return startJob(this.#engine, spec, ref);
  }

  watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    return watchJob(this.#engine, this.#watches, ref, onLine);
  }

  stop(ref: string): Promise<void> {
    return cancelJob(this.#engine, ref);
  }

  remove(kind: ArtifactKind, ref: string): Promise<void> {
    return removeArtifact(this.#engine, kind, ref);
  }

  listLabelled(): Promise<LabelledObject[]> {
    return listLabelled(this.#engine);
  }

  async close(): Promise<void> {
    for (const watch of this.#watches) watch.abort();
    this.#watches.clear();
  }
}
