/**
 * The `process` substrate (embedded default): every step runs as a local process group under a
 * small detached supervisor (native/ferry-supervise.c), so stopping or killing the Ferry server
 * never kills a migration. A job is its step folder (see step-folder.ts):
 *
 *   <dataDir>/jobs/<migration>/a<attempt>-s<step>/   spec.json (written first), pid, result
 *
 * and its output goes through its supervisor into the attempt log, bounded (`logLimit`), which
 * `watch` tails for `::ferry::` lines (log-tail.ts). The declared peak is enforced through cgroups
 * (cgroups.ts).
 *
 * Confinement (`isolation`, when Ferry runs as root): the supervisor runs each job as its tenant's
 * `runAs` identity, without privileges, in its own mount, PID, IPC and UTS namespaces, seeing the
 * system's folders read-only, its tenant's data and its scratch read-write at their usual paths, a
 * private /tmp, and nothing of Ferry's data, other tenants or other processes (native/ferry-supervise.c,
 * isolation.ts, tenant-folders.ts). Its environment is the job contract's variables and the
 * request's env, nothing of Ferry's.
 *
 * Supervisors are started by a small fork server (native/ferry-spawner.c, started by init()), so
 * the server never forks its own large process; it reports their exits. Without it, they are
 * spawned from Node (launch.ts). A supervisor is cancelled with SIGUSR1 and ignores SIGTERM, SIGINT
 * and SIGHUP. The decisions behind all this: docs/decisions.md, "Running jobs".
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import type { Resources, Tenant } from '../../core/types.ts';
import {
  jobLabels,
  type ArtifactKind,
  type IsolationSupport,
  type LabelledObject,
  type LimitsSupport,
  type StepResult,
  type StepSpec,
  type Substrate,
} from '../substrate.ts';
import { listMeta, removeMeta, writeMeta, type ArtifactMeta } from './artifact-meta.ts';
import { detectCgroups, removeCgroups, type CgroupDriver, type JobCgroups } from './cgroups.ts';
import { detectIsolation } from './isolation.ts';
import { settleAll } from './settle-all.ts';
import { assertNoNul, Launcher, supervisorRequest, waitForPidFile } from './launch.ts';
import { currentBootId, isAlive, killGroup, signal } from './proc.ts';
import { resolveProcessOptions, type ProcessSubstrateConfig, type ProcessSubstrateOptions } from './process-options.ts';
import {
  cgroupName,
  listStepFolders,
  readJobFile,
  readPidFile,
  resultPath,
  sameBoot,
  specPath,
  stepFolder,
  writeJobFile,
  type JobFile,
} from './step-folder.ts';
import { lost } from './step-result.ts';
import { followStep } from './step-watch.ts';
import { WakeUp } from './supervisor-handle.ts';
import { TenantFolders } from './tenant-folders.ts';

export type { ProcessSubstrateOptions } from './process-options.ts';

const execFileAsync = promisify(execFile);

export class ProcessSubstrate implements Substrate {
  readonly kind = 'process' as const;
  private readonly opts: ProcessSubstrateConfig;
  private cgroups: CgroupDriver | null = null;
  private limitsSupport: LimitsSupport = { enforced: false, detail: 'not initialised' };
  private isolationSupport: IsolationSupport = { isolated: false, detail: 'not initialised' };
  private readonly tenants: TenantFolders;
  private readonly launcher: Launcher;
  private bootId: string | null = null;
  private closed = false;
  /** Wake-ups of the pending watches, so close() ends them at once. */
  private readonly watching = new Set<WakeUp>();
  /** Label files of scratch folders being written, by ref (see `label`). */
  private readonly labelling = new Map<string, Promise<void>>();
  private readonly roots: Record<'jobs' | 'scratch' | 'snapshots' | 'logs' | 'tenants', string>;

  constructor(options: ProcessSubstrateOptions) {
    this.opts = resolveProcessOptions(options);
    const dataDir = this.opts.dataDir;
    this.roots = {
      jobs: join(dataDir, 'jobs'),
      scratch: join(dataDir, 'scratch'),
      snapshots: join(dataDir, 'snapshots'),
      logs: join(dataDir, 'logs'),
      tenants: join(dataDir, 'tenants'),
    };
    // Ferry runs as root: it can hand folders over to a tenant's identity.
    this.tenants = new TenantFolders(this.roots.tenants, process.geteuid?.() === 0);
    this.launcher = new Launcher(this.opts.spawnerPath);
  }

  async init(): Promise<void> {
    if (!existsSync(this.opts.supervisorPath)) {
      throw new FerryError(
        'FERRY_SUPERVISOR_NOT_BUILT',
        `the process supervisor is not built (${this.opts.supervisorPath}); run npm install (it needs a C compiler: apt-get install gcc)`,
      );
    }
    // Logs, step folders, snapshots and scratch are Ferry's: nobody else may list or read them.
    for (const dir of Object.values(this.roots)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    }
    this.bootId = currentBootId();
    this.isolationSupport = await detectIsolation(this.opts.isolation, this.opts.supervisorPath, this.tenants.privileged);
    if (!this.isolationSupport.isolated && this.opts.isolation === 'required') {
      throw new FerryError(
        'FERRY_CANNOT_CONFINE',
        `isolation is required but jobs cannot be confined here (${this.isolationSupport.detail}); run Ferry as root on a host ` +
          'that allows mount and PID namespaces, or set isolation to auto to run jobs unconfined (said at start and recorded on each migration)',
      );
    }
    // Without the spawner (not built, or it cannot run) every start falls back to spawning from Node.
    await this.launcher.start();
    if (this.opts.cgroups === 'off') {
      this.limitsSupport = { enforced: false, detail: 'cgroups turned off by configuration: declared peaks are not enforced' };
      return;
    }
    const found = detectCgroups();
    if ('error' in found) {
      this.limitsSupport = { enforced: false, detail: `${found.error}: declared peaks are NOT enforced on this machine` };
    } else {
      this.cgroups = found;
      this.limitsSupport = { enforced: true, detail: found.detail };
    }
  }

  capacity(): Resources {
    return this.opts.capacity;
  }

  limits(): LimitsSupport {
    return this.limitsSupport;
  }

  isolation(): IsolationSupport {
    return this.isolationSupport;
  }

  enforcedDimensions(): readonly string[] {
    return this.limitsSupport.enforced && this.cgroups ? this.cgroups.dimensions : [];
  }

  /** A tenant's data is a folder: its `data`, or <dataDir>/tenants/<id>. */
  tenantData(tenant: Tenant): string {
    return this.tenants.dataOf(tenant);
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    return this.tenants.dataExists(tenant);
  }

  /** Hands the tenant's data folder over to its `runAs` identity, never following a link (see tenant-folders.ts). */
  async adoptTenantData(tenant: Tenant): Promise<string | null> {
    return this.tenants.adoptData(tenant);
  }

  scratchRef(migrationId: string): string {
    return join(this.roots.scratch, migrationId);
  }

  snapshotRef(migrationId: string): string {
    return join(this.roots.snapshots, migrationId);
  }

  jobRef(spec: StepSpec): string {
    return stepFolder(this.roots.jobs, spec);
  }

  /** The migration's own folder: owned by its tenant's identity, 0700. Its label file follows (see `label`). */
  async createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void> {
    this.assertUnder('scratch', ref);
    await this.tenants.createOwned(ref, spec.tenant);
    this.label(ref, { migrationId: spec.migrationId, issue: spec.issue });
  }

  async snapshot(tenant: Tenant, ref: string, meta: { migrationId: string; issue: string }): Promise<void> {
    this.assertUnder('snapshots', ref);
    const data = this.tenantData(tenant);
    await rm(ref, { recursive: true, force: true });
    await mkdir(ref, { recursive: true });
    await writeMeta(ref, meta);
    if (existsSync(data)) await execFileAsync('cp', ['-a', '--reflink=auto', `${data}/.`, `${ref}/`]);
  }

  async restore(tenant: Tenant, ref: string): Promise<void> {
    this.assertUnder('snapshots', ref);
    if (!existsSync(ref)) throw new FerryError('FERRY_NO_WIPE', `the snapshot ${ref} is gone; it cannot be restored`);
    const data = this.tenantData(tenant);
    await this.tenants.ensureData(tenant);
    for (const entry of await readdir(data)) await rm(join(data, entry), { recursive: true, force: true });
    await execFileAsync('cp', ['-a', '--reflink=auto', `${ref}/.`, `${data}/`]);
  }

  async start(spec: StepSpec, ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    assertNoNul(spec);
    const confined = this.isolationSupport.isolated;
    const runAs = confined ? this.tenants.identityOf(spec.tenant) : null;
    // Independent of one another, so made at once (each await is a thread-pool round trip, and a
    // wake-up of this thread on a busy machine). All are settled before anything further happens.
    const [, logOffset] = await settleAll([
      // mkdir of the step folder is the start's point of no return: a second start of the same ref fails here.
      mkdir(dirname(ref), { recursive: true, mode: 0o700 }).then(() => mkdir(ref, { mode: 0o700 })),
      mkdir(dirname(spec.logPath), { recursive: true, mode: 0o700 }).then(() => sizeOf(spec.logPath)),
      // The tenant's data folder is the tenant's, not an artifact: created if missing, never removed.
      this.tenants.ensureData(spec.tenant),
    ]);

    let cgroups: JobCgroups | null = null;
    if (this.cgroups) {
      try {
        cgroups = await this.cgroups.create(cgroupName(ref), spec.limits);
      } catch (err) {
        await removeCgroups(this.cgroups.dirsFor(cgroupName(ref)));
        throw new FerryError('FERRY_INTERNAL', `cannot create the job's cgroup: ${(err as Error).message}`, {}, { cause: err });
      }
    }
    const job: JobFile = {
      labels: jobLabels(spec),
      migrationId: spec.migrationId,
      issue: spec.issue,
      logPath: spec.logPath,
      logOffset,
      cgroupDirs: cgroups?.dirs ?? [],
      limits: spec.limits,
      timeoutMs: spec.timeoutMs ?? null,
      startedAt: new Date().toISOString(),
      bootId: this.bootId,
    };
    try {
      await writeJobFile(ref, job);
    } catch (err) {
      await removeCgroups(job.cgroupDirs);
      throw err;
    }

    const request = supervisorRequest(spec, {
      supervisorPath: this.opts.supervisorPath,
      ref,
      logLimit: this.opts.logLimit,
      tenantData: this.tenantData(spec.tenant),
      cgroups,
      runAs,
    });
    const handle = await this.launcher.launch(ref, request);
    await waitForPidFile(ref, handle);
  }

  async watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    this.assertUnder('jobs', ref);
    this.assertOpen();
    const job = await readJobFile(ref);
    if (job === null) {
      this.assertOpen();
      return lost('Ferry has no record on disk that this step ever started');
    }
    const own = this.launcher.handleOf(ref);
    // One wake-up for the whole watch, subscribed once to the supervisor's exit and to close().
    const wakeUp = new WakeUp();
    const unsubscribe = own?.onChange(wakeUp.wake);
    this.watching.add(wakeUp);
    try {
      const assertOpen = (): void => this.assertOpen();
      return await followStep({ ref, job, own, wakeUp, bootId: this.bootId, pollMs: this.opts.pollMs, assertOpen }, onLine);
    } finally {
      unsubscribe?.();
      this.watching.delete(wakeUp);
    }
  }

  async stop(ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    const job = await readJobFile(ref);
    if (job && !sameBoot(job, this.bootId)) return;
    for (let i = 0; i < 250; i++) {
      if (existsSync(resultPath(ref))) return;
      const pid = await readPidFile(ref);
      if (pid) {
        // SIGUSR1 is the supervisor's cancel; it ignores SIGTERM, SIGINT and SIGHUP.
        if (isAlive(pid.supervisor, pid.supervisorStart)) signal(pid.supervisor, 'SIGUSR1');
        return;
      }
      if (!existsSync(specPath(ref))) return;
      await sleep(20);
    }
  }

  async remove(kind: ArtifactKind, ref: string): Promise<void> {
    switch (kind) {
      case 'job': {
        this.assertUnder('jobs', ref);
        const job = await readJobFile(ref);
        const pid = await readPidFile(ref);
        if (pid && !existsSync(resultPath(ref)) && (job === null || sameBoot(job, this.bootId))) {
          killGroup(pid.job, pid.jobStart);
          if (isAlive(pid.supervisor, pid.supervisorStart)) signal(pid.supervisor, 'SIGKILL');
        }
        // The cgroups are derived from the ref too: a crash before spec.json leaves them recorded nowhere.
        const dirs = new Set([...(job?.cgroupDirs ?? []), ...(this.cgroups?.dirsFor(cgroupName(ref)) ?? [])]);
        await removeCgroups([...dirs]);
        await rm(ref, { recursive: true, force: true });
        await rmdir(dirname(ref)).catch(() => undefined); // the migration's folder, once empty
        return;
      }
      case 'scratch':
        this.assertUnder('scratch', ref);
        await this.labelling.get(ref);
        await rm(ref, { recursive: true, force: true });
        await removeMeta(ref);
        return;
      case 'snapshot':
        this.assertUnder('snapshots', ref);
        await rm(ref, { recursive: true, force: true });
        await removeMeta(ref);
        return;
      case 'log':
        this.assertUnder('logs', ref);
        await rm(ref, { force: true });
        await rmdir(dirname(ref)).catch(() => undefined); // the migration's folder, once empty
        return;
    }
  }

  async listLabelled(): Promise<LabelledObject[]> {
    await Promise.all(this.labelling.values());
    const out: LabelledObject[] = [];
    for (const [kind, root] of [
      ['scratch', this.roots.scratch],
      ['snapshot', this.roots.snapshots],
    ] as const) {
      const skipped = (file: string): void =>
        this.opts.warn(`skipped ${file}: it is empty or not valid metadata; remove it, and the ${kind} next to it if it is not needed`);
      for (const { ref, meta } of await listMeta(root, skipped)) out.push({ kind, ref, migrationId: meta.migrationId, issue: meta.issue });
    }
    for (const { ref, job } of await listStepFolders(this.roots.jobs)) {
      out.push({ kind: 'job', ref, migrationId: job.migrationId, issue: job.issue });
    }
    return out;
  }

  /**
   * Ends the spawner (never a supervisor or a job), waits for the label files being written, and
   * makes every pending watch reject with FERRY_INTERNAL "substrate closed": the runner stops
   * supervising, and the next start re-attaches.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const wakeUp of this.watching) wakeUp.wake();
    await Promise.all([this.launcher.close(), ...this.labelling.values()]);
  }

  /**
   * Writes a scratch folder's label file (`<ref>.ferry.json`, read only by the orphan sweep) behind
   * the job's start instead of before it. Atomic and durable, it costs two fsyncs (6 ms p50, 25 ms
   * p99 on the 2-core benchmark machine under load), and nothing the job needs depends on it: the
   * store records the scratch before it exists, and teardown removes it by that record. listLabelled,
   * remove and close wait for the writes under way. A failed write (a full disk) is said; the sweep
   * then does not see that scratch, and teardown still removes it.
   */
  private label(ref: string, meta: ArtifactMeta): void {
    const write = (this.labelling.get(ref) ?? Promise.resolve())
      .then(() => writeMeta(ref, meta))
      .catch((err: unknown) =>
        this.opts.warn(`cannot write the label of ${ref} (${(err as Error).message}); the orphan sweep will not see it, teardown still removes it`),
      )
      .finally(() => {
        if (this.labelling.get(ref) === write) this.labelling.delete(ref);
      });
    this.labelling.set(ref, write);
  }

  private assertOpen(): void {
    if (this.closed) throw new FerryError('FERRY_INTERNAL', 'substrate closed');
  }

  /** Refuse any path outside the folder Ferry owns for that kind: tenant data can never be removed. */
  private assertUnder(root: keyof ProcessSubstrate['roots'], ref: string): void {
    const base = this.roots[root] + sep;
    if (!resolve(ref).startsWith(base) || resolve(ref) !== ref) {
      throw new FerryError('FERRY_INTERNAL', `refusing to touch ${ref}: it is not inside ${base}`);
    }
  }
}

/** A file's size, 0 when it does not exist yet (the supervisor creates the log). */
async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
