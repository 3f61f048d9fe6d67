/**
 * The `swarm` substrate (issue #13): each step is one Docker Swarm service in `replicated-job` mode
 * with one completion and restart condition `none`, so the swarm never runs it twice; placed on its
 * tenant's swarm node; the declared peak as its limits and reservations; labelled as a migration
 * (TR-38). Ferry drives the swarm through one manager's Docker Engine API (dockerode).
 *
 * Where things live, on the tenant's node:
 * - tenant data: a named volume (the tenant's `data`, default `ferry-tenant-<id>`) at
 *   /ferry/tenant. Never created, emptied or removed by Ferry, except that `restore` replaces its
 *   content with a snapshot's on an operator's action.
 * - scratch: volume `ferry-scratch-<migrationId>` at /ferry/scratch; snapshot: volume
 *   `ferry-snapshot-<migrationId>`. Both are created (by the node's engine, through a mount with
 *   Ferry's labels) and filled by helper services placed on the node (helper-jobs.ts).
 * - job: service `ferry-<migrationId>-a<attempt>-s<step>` (`-swipe` for the wipe step); what a
 *   re-attach needs is on the service (labels), so `watch(ref)` works from a fresh process.
 * - stop intents: the container substrate's marker files under `dataDir`.
 *
 * Names, labels, the job contract's paths, the log bound, the exit-status reading and the stop
 * markers are the container substrate's (imported, not copied): a migration looks the same on both.
 */
import Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { Resources, Tenant } from '../../core/types.ts';
import type { ArtifactKind, IsolationSupport, LabelledObject, LimitsSupport, StepResult, StepSpec, Substrate, SubstrateKind } from '../substrate.ts';
import { ROLE, safeName } from '../container/container-labels.ts';
import { engineMessage, isConflict } from '../container/engine-errors.ts';
import { fileSize, jobUser } from '../container/job-container-spec.ts';
import { StopMarkers } from '../container/stop-markers.ts';
import type { Labels } from '../container/container-labels.ts';
import { tenantDataName, tenantVolume } from '../container/volumes.ts';
import { WIPE_STEP } from '../../core/steps.ts';
import { adoptOnNode, copyOnNode, createScratchOnNode, ownerLabels, removeLeftHelpers, SNAPSHOT_MARKER } from './helper-jobs.ts';
import { jobServiceSpec } from './job-service-spec.ts';
import { volumesOn } from './node-volumes.ts';
import { tenantNode } from './placement.ts';
import type { TenantNode } from './placement.ts';
import { cancelService } from './service-stop.ts';
import { watchService } from './service-watch.ts';
import { listLabelled, removeArtifact } from './swarm-artifacts.ts';
import type { SwarmEngine } from './swarm-engine.ts';
import { resolveSwarmOptions } from './swarm-options.ts';
import type { SwarmSubstrateConfig, SwarmSubstrateOptions } from './swarm-options.ts';
import { VolumePlaces } from './volume-places.ts';

export type { SwarmSubstrateOptions } from './swarm-options.ts';

export class SwarmSubstrate implements Substrate {
  readonly kind: SubstrateKind = 'swarm';
  readonly #config: SwarmSubstrateConfig;
  readonly #docker: Docker;
  readonly #engine: SwarmEngine;
  #managerNodeId: string | null = null;
  #capacity: Resources | null = null;
  readonly #watches = new Set<AbortController>();

  constructor(options: SwarmSubstrateOptions) {
    this.#config = resolveSwarmOptions(options);
    this.#docker = new Docker({ socketPath: this.#config.socketPath });
    this.#engine = {
      docker: this.#docker,
      config: this.#config,
      stops: new StopMarkers(this.#config.dataDir),
      places: new VolumePlaces(this.#config.dataDir),
      instance: createHash('sha256').update(this.#config.dataDir).digest('hex').slice(0, 12),
      managerNodeId: () => {
        if (!this.#managerNodeId) throw new FerryError('FERRY_INTERNAL', 'SwarmSubstrate used before init(); call init() first');
        return this.#managerNodeId;
      },
    };
  }

  async init(): Promise<void> {
    const where = `unix://${this.#config.socketPath}`;
    let timer: NodeJS.Timeout | undefined;
    let info: { NCPU?: number; MemTotal?: number; Swarm?: { LocalNodeState?: string; NodeID?: string; ControlAvailable?: boolean } };
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
      info = (await this.#docker.info()) as typeof info;
    } catch (err) {
      throw new FerryError(
        'FERRY_ENGINE_UNAVAILABLE',
        `swarm manager not answering at ${where} (${engineMessage(err)}); start its Docker engine (e.g. scripts/setup-swarm.sh), or point DOCKER_HOST / socketPath at a manager's socket`,
        { socketPath: this.#config.socketPath },
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable || !info.Swarm.NodeID) {
      throw new FerryError(
        'FERRY_ENGINE_UNAVAILABLE',
        `the Docker engine at ${where} is not a swarm manager (swarm state ${info.Swarm?.LocalNodeState ?? 'unknown'}, manager ${String(info.Swarm?.ControlAvailable ?? false)}); run \`docker swarm init\` there, or point Ferry at a manager`,
        { socketPath: this.#config.socketPath },
      );
    }
    this.#managerNodeId = info.Swarm.NodeID;
    // What one node can provide: a step runs on one node, so the manager's node is the measure.
    this.#capacity = this.#config.capacity ?? Object.freeze({ cpu: (info.NCPU ?? 0) * 1000, memory: info.MemTotal ?? 0 });
    this.#engine.stops.init();
    this.#engine.places.init();
    await removeLeftHelpers(this.#engine);
  }

  capacity(): Resources {
    if (!this.#capacity) throw new FerryError('FERRY_INTERNAL', 'SwarmSubstrate: capacity() before init(); call init() first');
    return this.#capacity;
  }

  limits(): LimitsSupport {
    return { enforced: true, detail: 'docker swarm task resources: memory + cpu limits (reserved as much), pids limit' };
  }

  isolation(): IsolationSupport {
    return {
      isolated: true,
      detail:
        `swarm tasks run as their tenant's uid:gid with all capabilities dropped and a pids limit (the peak's pids, else ${this.#config.defaultPidsLimit}); ` +
        'only the tenant volume and the scratch are mounted, never the engine socket; the environment is the job contract and the request env only; ' +
        'no-new-privileges is the engines\u2019 own setting (dockerd --no-new-privileges: swarm services of API 1.41 cannot ask for it)',
    };
  }

  enforcedDimensions(): readonly string[] {
    return ['cpu', 'memory', 'pids'];
  }

  tenantData(tenant: Tenant): string {
    return tenantDataName(tenant);
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    const node = await tenantNode(this.#engine, tenant);
    const [labels] = await volumesOn(this.#engine, node).labels([tenantVolume(tenant)]);
    return labels !== null;
  }

  async adoptTenantData(tenant: Tenant): Promise<string | null> {
    if (tenant.allowRoot) return null;
    const volume = tenantVolume(tenant);
    if (!(await this.tenantDataExists(tenant))) return null;
    const node = await tenantNode(this.#engine, tenant);
    return adoptOnNode(this.#engine, tenant, volume, node.constraint);
  }

  scratchRef(migrationId: string): string {
    return `ferry-scratch-${safeName(migrationId)}`;
  }

  snapshotRef(migrationId: string): string {
    return `ferry-snapshot-${safeName(migrationId)}`;
  }

  jobRef(spec: StepSpec): string {
    const step = spec.stepIndex === WIPE_STEP ? 'wipe' : String(spec.stepIndex);
    return `ferry-${safeName(spec.migrationId)}-a${spec.attempt}-s${step}`;
  }

  async createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void> {
    const owner = { migrationId: spec.migrationId, issue: spec.issue, tenantId: spec.tenant.id };
    const node = await tenantNode(this.#engine, spec.tenant);
    const [existing] = await this.#placeVolumes(node, [ref]);
    checkOwnVolume(ref, existing ?? null, 'scratch', owner.migrationId);
    await createScratchOnNode(this.#engine, ref, spec.tenant, node.constraint, owner);
  }

  async snapshot(tenant: Tenant, ref: string, meta: { migrationId: string; issue: string }): Promise<void> {
    const source = tenantVolume(tenant);
    const node = await tenantNode(this.#engine, tenant);
    const [data, existing] = await this.#placeVolumes(node, [source, ref]);
    if (data === null) {
      throw new FerryError(
        'FERRY_NOT_FOUND',
        `cannot snapshot tenant ${tenant.id}: its data volume ${source} does not exist on swarm node ${node.hostname || node.id}; create it or fix the tenant's data or placement`,
      );
    }
    const owner = { migrationId: meta.migrationId, issue: meta.issue, tenantId: tenant.id };
    checkOwnVolume(ref, existing ?? null, 'snapshot', owner.migrationId);
    await copyOnNode(this.#engine, {
      name: `${ref}-copy`,
      from: source,
      to: ref,
      constraint: node.constraint,
      owner,
      createTo: ownerLabels('snapshot', owner),
      requireMarker: false,
      writeMarker: true,
      what: `snapshot of tenant ${tenant.id} (volume ${source}) into ${ref}`,
    });
  }

  async restore(tenant: Tenant, ref: string): Promise<void> {
    const target = tenantVolume(tenant);
    const node = await tenantNode(this.#engine, tenant);
    const [labels, data] = await volumesOn(this.#engine, node).labels([ref, target]);
    if (!labels) {
      throw new FerryError(
        'FERRY_NOT_FOUND',
        `cannot restore tenant ${tenant.id}: snapshot volume ${ref} does not exist on swarm node ${node.hostname || node.id}; the tenant's data was left as it is`,
      );
    }
    if (labels[ROLE] !== 'snapshot' || labels['ferry.tenant'] !== tenant.id) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `refusing to restore tenant ${tenant.id} from volume ${ref}: it is not a Ferry snapshot of that tenant (labels ${JSON.stringify(labels)})`,
      );
    }
    if (!data) throw new FerryError('FERRY_NOT_FOUND', `cannot restore tenant ${tenant.id}: its data volume ${target} does not exist; create it first`);
    const owner = { migrationId: labels['ferry.migration'] ?? '', issue: labels['ferry.issue'] ?? '', tenantId: tenant.id };
    // The helper refuses (touching nothing) unless the snapshot's completion marker is there.
    await copyOnNode(this.#engine, {
      name: `${ref}-copy`,
      from: ref,
      to: target,
      constraint: node.constraint,
      owner,
      requireMarker: true,
      writeMarker: false,
      what: `restore of tenant ${tenant.id} (volume ${target}) from ${ref}`,
    });
  }

  async start(spec: StepSpec, ref: string): Promise<void> {
    const image = spec.image ?? this.#config.defaultImage;
    if (!image) {
      throw new FerryError(
        'FERRY_INVALID_REQUEST',
        `step ${spec.stepName} of migration ${spec.migrationId} names no image and the swarm substrate has no defaultImage; add \`image:\` to the request`,
      );
    }
    if (!isAbsolute(spec.logPath)) {
      throw new FerryError('FERRY_INTERNAL', `StepSpec.logPath must be an absolute host path, got ${spec.logPath}; the runner names each step's log`, { ref });
    }
    const volume = tenantVolume(spec.tenant);
    const node = await tenantNode(this.#engine, spec.tenant);
    const [data, scratch] = await volumesOn(this.#engine, node).labels([volume, spec.scratchRef]);
    // A node creates a missing named volume on the fly: the job would write into a new, empty volume.
    if (!data) {
      throw new FerryError(
        'FERRY_NOT_FOUND',
        `tenant ${spec.tenant.id}'s data volume ${volume} does not exist on swarm node ${node.hostname || node.id}; create it (or fix the tenant's data or placement) before running migration ${spec.migrationId}`,
      );
    }
    if (!scratch || scratch[ROLE] !== 'scratch') {
      throw new FerryError('FERRY_NOT_FOUND', `scratch volume ${spec.scratchRef} of migration ${spec.migrationId} is missing; createScratch() first`);
    }
    const create = jobServiceSpec({
      spec,
      ref,
      image,
      tenantVolume: volume,
      user: jobUser(spec.tenant),
      constraint: node.constraint,
      logStart: fileSize(spec.logPath),
      logLimit: this.#config.logLimit,
      defaultPidsLimit: this.#config.defaultPidsLimit,
    });
    try {
      await this.#docker.createService(create);
    } catch (err) {
      if (isConflict(err)) {
        throw new FerryError(
          'FERRY_CONFLICT',
          `job service ${ref} already exists; watch it (re-attach) or remove it, Ferry never runs a step twice`,
          { ref },
          { cause: err },
        );
      }
      throw new FerryError('FERRY_INTERNAL', `could not create job service ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
    }
  }

  watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    return watchService(this.#engine, this.#watches, ref, onLine);
  }

  stop(ref: string): Promise<void> {
    return cancelService(this.#engine, ref);
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

  /** Labels of volumes about to be made on the node, whose place is recorded first (a removal after a crash finds them). */
  async #placeVolumes(node: TenantNode, names: readonly string[]): Promise<Array<Labels | null>> {
    const labels = await volumesOn(this.#engine, node).labels(names);
    for (const name of names) if (/^ferry-(scratch|snapshot)-/.test(name)) this.#engine.places.set(name, node.id);
    return labels;
  }
}

/** A scratch or snapshot name already taken by something else is refused before a helper mounts it. */
function checkOwnVolume(name: string, existing: Labels | null, role: 'scratch' | 'snapshot', migrationId: string): void {
  if (existing !== null && (existing[ROLE] !== role || existing['ferry.migration'] !== migrationId)) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `volume ${name} already exists and is not the ${role} of migration ${migrationId} (labels ${JSON.stringify(existing)}); remove or rename it`,
    );
  }
}

export { SNAPSHOT_MARKER };
