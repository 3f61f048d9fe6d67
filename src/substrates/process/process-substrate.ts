/**
 * The `process` substrate (embedded default): every step runs as a local process group under a
 * small detached supervisor (native/ferry-supervise.c), so stopping or killing the Ferry server
 * never kills a migration. A job is its step folder:
 *
 *   <dataDir>/jobs/<migration>/a<attempt>-s<step>/   spec.json (written first), pid, result
 *
 * and its output goes through its supervisor into the attempt log, bounded (`logLimit`), which
 * `watch` tails for `::ferry::` lines. The declared peak is enforced through cgroups.
 *
 * Confinement (`isolation`, when Ferry runs as root): the supervisor runs each job as its tenant's
 * `runAs` identity, without privileges, in its own mount, PID, IPC and UTS namespaces, seeing the
 * system's folders read-only, its tenant's data and its scratch read-write at their usual paths, a
 * private /tmp, and nothing of Ferry's data, other tenants or other processes (native/ferry-supervise.c).
 * Its environment is the job contract's variables and the request's env, nothing of Ferry's.
 *
 * Supervisors are started by a small fork server (native/ferry-spawner.c, started by init()), so
 * the server never forks its own large process; it reports their exits. Without it, they are
 * spawned from Node. A supervisor is cancelled with SIGUSR1 and ignores SIGTERM, SIGINT and SIGHUP.
 */
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, open, readFile, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import { formatQuantity } from '../../core/quantity.ts';
import type { FailureCause, Identity, Resources, Tenant } from '../../core/types.ts';
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
import { detectCgroups, removeCgroups, type CgroupDriver } from './cgroups.ts';
import { LogTail } from './log-tail.ts';
import { nextPollMs } from './poll-interval.ts';
import { SpawnFailedError, Spawner, SpawnerGoneError, SpawnerUnreachableError, type SpawnRequest } from './spawner.ts';
import { SupervisorHandle, WakeUp } from './supervisor-handle.ts';

const execFileAsync = promisify(execFile);
/** Log polling of a job Ferry spawned itself (its exit is an event): while output grows, and when quiet. */
const OUTPUT_POLL_MS = 100;
/** Longest wait between two looks at a job while nothing changes, whether or not its exit is an event. */
const IDLE_POLL_MS = 1000;
const BUILD = resolve(dirname(fileURLToPath(import.meta.url)), '../../../build');
const DEFAULT_SUPERVISOR = join(BUILD, 'ferry-supervise');
const DEFAULT_SPAWNER = join(BUILD, 'ferry-spawner');
const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';
/** A job's PATH unless its request sets one: Ferry's own PATH is Ferry's business. */
const JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_LOG_LIMIT = 64 * 1024 * 1024;
/** What a job sees when it is confined: said at start and recorded on each migration. */
const CONFINED_DETAIL =
  "jobs run as their tenant's runAs uid and gid without privileges (no supplementary groups, no new privileges), in their own " +
  "mount, PID, IPC and UTS namespaces: they see the system's folders (/usr, /etc, /opt, /bin, /lib...) read-only, their tenant's " +
  'data folder and their scratch read-write, a private /tmp and /dev/shm, and no /sys, no Ferry data folder, no other tenant, ' +
  'no /root, /home, /run or /var, and no process outside their step';
const UNCONFINED_SEES =
  "a job runs as Ferry's own user and sees everything that user can: Ferry's data folder (its token and its store), every " +
  "tenant's data, the server's processes (and their environment, when that user is root) and the cgroup tree";

export interface ProcessSubstrateOptions {
  /** Ferry's data folder; jobs, scratch, snapshots and logs live below it. */
  readonly dataDir: string;
  /** What this node offers. Default: all cores (millicores) and all memory. */
  readonly capacity?: Resources | undefined;
  /** `auto` (default): use cgroups when writable, else run without limits and say so. `off`: never. */
  readonly cgroups?: 'auto' | 'off';
  /** Path of the built supervisor. Default: build/ferry-supervise of this package. */
  readonly supervisorPath?: string;
  /**
   * Path of the built fork server that spawns supervisors, or `null` to spawn them from Node (about
   * 10 ms of blocked event loop per job). Default: build/ferry-spawner of this package, when built.
   */
  readonly spawnerPath?: string | null;
  /**
   * How soon a job Ferry did not spawn itself (re-attached) is looked at again after its output
   * grew; with no change the wait doubles up to 1 s. Default 100 ms.
   */
  readonly pollMs?: number;
  /**
   * Confinement of jobs. `auto` (default): confine when the host can (Ferry runs as root, the kernel
   * allows mount and PID namespaces), else run jobs unconfined and say so (`isolation()`).
   * `required`: refuse to start (init() throws) where jobs cannot be confined. `off`: never confine.
   */
  readonly isolation?: 'auto' | 'required' | 'off';
  /**
   * Bytes of output kept per step in the attempt log. Default 64 MiB. Past it, the first and the
   * last half are kept, with a line saying how many bytes were dropped between them; `::ferry::`
   * lines from the middle still reach the log.
   */
  readonly logLimit?: number;
  /** Where to say that something was skipped (a damaged metadata file). Default: nowhere. */
  readonly warn?: ((msg: string) => void) | undefined;
}

interface JobFile {
  readonly labels: Record<string, string>;
  readonly migrationId: string;
  readonly issue: string;
  readonly logPath: string;
  readonly logOffset: number;
  readonly cgroupDirs: readonly string[];
  readonly limits: Resources;
  readonly timeoutMs: number | null;
  readonly startedAt: string;
  /** The kernel's boot id when the job started: after a reboot its pids mean other processes. Absent in older records. */
  readonly bootId?: string | null;
}

interface PidFile {
  readonly supervisor: number;
  readonly supervisorStart: string;
  readonly job: number;
  readonly jobStart: string;
}

interface RawResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly cause: FailureCause | null;
}

interface ArtifactMeta {
  readonly migrationId: string;
  readonly issue: string;
}

export class ProcessSubstrate implements Substrate {
  readonly kind = 'process' as const;
  private readonly opts: Required<Omit<ProcessSubstrateOptions, 'capacity' | 'warn'>> & {
    capacity: Resources;
    warn: (msg: string) => void;
  };
  private cgroups: CgroupDriver | null = null;
  private limitsSupport: LimitsSupport = { enforced: false, detail: 'not initialised' };
  private isolationSupport: IsolationSupport = { isolated: false, detail: 'not initialised' };
  /** Ferry runs as root: it can hand folders over to a tenant's identity. */
  private readonly privileged = process.geteuid?.() === 0;
  /** Supervisors this process started, by job ref: their exit is an event, not a poll. */
  private readonly supervisors = new Map<string, SupervisorHandle>();
  private spawner: Spawner | null = null;
  private bootId: string | null = null;
  private closed = false;
  /** Wake-ups of the pending watches, so close() ends them at once. */
  private readonly watching = new Set<WakeUp>();
  private readonly roots: Record<'jobs' | 'scratch' | 'snapshots' | 'logs' | 'tenants', string>;

  constructor(options: ProcessSubstrateOptions) {
    const dataDir = resolve(options.dataDir);
    this.opts = {
      dataDir,
      capacity: options.capacity ?? { cpu: availableParallelism() * 1000, memory: totalmem() },
      cgroups: options.cgroups ?? 'auto',
      supervisorPath: options.supervisorPath ?? DEFAULT_SUPERVISOR,
      spawnerPath: options.spawnerPath === undefined ? DEFAULT_SPAWNER : options.spawnerPath,
      pollMs: options.pollMs ?? 100,
      isolation: options.isolation ?? 'auto',
      logLimit: options.logLimit ?? DEFAULT_LOG_LIMIT,
      warn: options.warn ?? (() => undefined),
    };
    if (!Number.isSafeInteger(this.opts.logLimit) || this.opts.logLimit < 2) {
      throw new FerryError('FERRY_INTERNAL', `logLimit must be a whole number of bytes, at least 2 (got ${String(options.logLimit)})`);
    }
    this.roots = {
      jobs: join(dataDir, 'jobs'),
      scratch: join(dataDir, 'scratch'),
      snapshots: join(dataDir, 'snapshots'),
      logs: join(dataDir, 'logs'),
      tenants: join(dataDir, 'tenants'),
    };
  }

  async init(): Promise<void> {
    if (!existsSync(this.opts.supervisorPath)) {
      throw new FerryError(
        'FERRY_INTERNAL',
        `the process supervisor is not built (${this.opts.supervisorPath}); run npm install (it needs a C compiler: apt-get install gcc)`,
      );
    }
    // Logs, step folders, snapshots and scratch are Ferry's: nobody else may list or read them.
    for (const dir of Object.values(this.roots)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    }
    this.bootId = currentBootId();
    this.isolationSupport = await this.detectIsolation();
    if (!this.isolationSupport.isolated && this.opts.isolation === 'required') {
      throw new FerryError(
        'FERRY_INTERNAL',
        `isolation is required but jobs cannot be confined here (${this.isolationSupport.detail}); run Ferry as root on a host ` +
          'that allows mount and PID namespaces, or set isolation to auto to run jobs unconfined (said at start and recorded on each migration)',
      );
    }
    // Without the spawner (not built, or it cannot run) every start falls back to spawning from Node.
    await this.startSpawner();
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

  /** Whether jobs can be confined here: asked of the supervisor itself, which builds a whole view and runs nothing. */
  private async detectIsolation(): Promise<IsolationSupport> {
    if (this.opts.isolation === 'off') {
      return { isolated: false, detail: `isolation turned off by configuration: ${UNCONFINED_SEES}` };
    }
    if (!this.privileged) {
      return {
        isolated: false,
        detail:
          `Ferry does not run as root (uid ${process.geteuid?.() ?? 'unknown'}), so it cannot run a job as its tenant's identity or give it ` +
          `a view of its own: ${UNCONFINED_SEES}. Run Ferry as root to confine jobs (confinement through user namespaces, ` +
          'without root, is not implemented)',
      };
    }
    const dir = await mkdtemp(join(tmpdir(), 'ferry-isolation-probe-'));
    try {
      await execFileAsync(this.opts.supervisorPath, ['-P', dir], { env: {}, timeout: 10_000 });
      return { isolated: true, detail: CONFINED_DETAIL };
    } catch (err) {
      const said = String((err as { stdout?: unknown }).stdout ?? '').trim() || (err as Error).message;
      return { isolated: false, detail: `this host refused to confine a job (${said}): ${UNCONFINED_SEES}` };
    } finally {
      await rmdir(dir).catch(() => undefined);
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
    return tenant.data || join(this.roots.tenants, tenant.id);
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    return existsSync(this.tenantData(tenant));
  }

  /**
   * Hands the tenant's data folder over to its `runAs` identity: `chown -R` that never follows a
   * symbolic link, never leaves the folder's file system, and leaves hard-linked files alone (one
   * may be a file outside the folder, such as /etc/shadow linked in by an earlier job that ran as
   * root). A missing folder is created, owned by the identity, 0700.
   */
  async adoptTenantData(tenant: Tenant): Promise<string | null> {
    const data = this.tenantData(tenant);
    const runAs = this.identityOf(tenant);
    const found = await lstat(data).catch(() => null);
    if (found === null) {
      await this.ensureTenantData(tenant);
      return this.privileged
        ? `created ${data} for uid ${runAs.uid} gid ${runAs.gid} (mode 0700)`
        : `created ${data} (mode 0700), owned by Ferry's own user: Ferry does not run as root, so it cannot hand folders over`;
    }
    assertPlainFolder(data, found);
    if (!this.privileged) return `left ${data} with its owner: Ferry does not run as root, so it cannot hand folders over`;
    const owner = `${runAs.uid}:${runAs.gid}`;
    await execFileAsync('find', ['-P', data, '-xdev', '!', '(', '-type', 'f', '-links', '+1', ')', '-exec', 'chown', '-h', owner, '--', '{}', '+']);
    const { stdout } = await execFileAsync('find', ['-P', data, '-xdev', '-type', 'f', '-links', '+1', '-print']);
    const linked = stdout.split('\n').filter(Boolean).length;
    return (
      `handed ${data} over to uid ${runAs.uid} gid ${runAs.gid}` +
      (linked > 0 ? `; left ${linked} hard-linked file(s) with their owner (a hard link may be a file outside the folder): check them and chown them yourself if they belong to the tenant` : '')
    );
  }

  /** The tenant's data folder exists: created when missing, owned by its identity, 0700. Never removed. */
  private async ensureTenantData(tenant: Tenant): Promise<void> {
    const data = this.tenantData(tenant);
    const found = await lstat(data).catch(() => null);
    if (found !== null) {
      assertPlainFolder(data, found);
      return;
    }
    await mkdir(data, { recursive: true, mode: 0o700 });
    await chmod(data, 0o700);
    if (this.privileged) {
      const { uid, gid } = this.identityOf(tenant);
      await chown(data, uid, gid);
    }
  }

  /** The identity a tenant's jobs run as: never root, never Ferry's own user. */
  private identityOf(tenant: Tenant): Identity {
    const runAs = (tenant as { runAs?: Identity }).runAs;
    const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) < 0xffffffff;
    if (!runAs || !valid(runAs.uid) || !valid(runAs.gid) || runAs.uid === process.geteuid?.()) {
      throw new FerryError(
        'FERRY_INTERNAL',
        `tenant ${tenant.id} has no identity its jobs may run as (runAs ${JSON.stringify(runAs ?? null)}): it needs a uid and gid ` +
          "other than root and other than Ferry's own; register the tenant again",
      );
    }
    return runAs;
  }

  scratchRef(migrationId: string): string {
    return join(this.roots.scratch, migrationId);
  }

  snapshotRef(migrationId: string): string {
    return join(this.roots.snapshots, migrationId);
  }

  jobRef(spec: StepSpec): string {
    const step = spec.stepIndex < 0 ? 'wipe' : String(spec.stepIndex);
    return join(this.roots.jobs, spec.migrationId, `a${spec.attempt}-s${step}`);
  }

  /** Where the runner keeps attempt logs for this substrate. */
  logsDir(): string {
    return this.roots.logs;
  }

  /** The migration's own folder: owned by its tenant's identity, 0700. */
  async createScratch(ref: string, spec: { migrationId: string; issue: string; tenant: Tenant }): Promise<void> {
    this.assertUnder('scratch', ref);
    await mkdir(ref, { recursive: true, mode: 0o700 });
    await chmod(ref, 0o700);
    if (this.privileged) {
      const { uid, gid } = this.identityOf(spec.tenant);
      await chown(ref, uid, gid);
    }
    await writeMeta(ref, { migrationId: spec.migrationId, issue: spec.issue });
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
    await this.ensureTenantData(tenant);
    for (const entry of await readdir(data)) await rm(join(data, entry), { recursive: true, force: true });
    await execFileAsync('cp', ['-a', '--reflink=auto', `${ref}/.`, `${data}/`]);
  }

  async start(spec: StepSpec, ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    assertNoNul(spec);
    const confined = this.isolationSupport.isolated;
    const runAs = confined ? this.identityOf(spec.tenant) : null;
    await mkdir(dirname(ref), { recursive: true, mode: 0o700 });
    // mkdir of the step folder is the start's point of no return: a second start of the same ref fails here.
    await mkdir(ref, { mode: 0o700 });
    await mkdir(dirname(spec.logPath), { recursive: true, mode: 0o700 });
    // The tenant's data folder is the tenant's, not an artifact: created if missing, never removed.
    await this.ensureTenantData(spec.tenant);
    const log = await open(spec.logPath, 'a');
    const logOffset = (await log.stat()).size;
    await log.close();

    let cgroups = null;
    if (this.cgroups) {
      try {
        cgroups = this.cgroups.create(cgroupName(ref), spec.limits);
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
      await writeFile(join(ref, 'spec.json'), JSON.stringify(job));
    } catch (err) {
      await removeCgroups(job.cgroupDirs);
      throw err;
    }

    // Every value is its own argv element and every path absolute: none can be read as an option or split.
    const data = this.tenantData(spec.tenant);
    const args = ['-d', ref, '-l', spec.logPath, '-L', String(this.opts.logLimit)];
    if (spec.timeoutMs !== undefined) args.push('-t', String(spec.timeoutMs));
    if (cgroups?.oomFile) args.push('-o', cgroups.oomFile);
    for (const procs of cgroups?.procs ?? []) args.push('-j', procs);
    if (runAs) args.push('-i', '-u', String(runAs.uid), '-g', String(runAs.gid), '-D', data);
    args.push('-w', spec.scratchRef, '--', ...spec.argv);

    // The supervisor's environment is the job's: nothing of Ferry's own (tokens, secrets) is passed on.
    const env: Record<string, string> = {
      PATH: JOB_PATH,
      HOME: spec.scratchRef,
      ...spec.env,
      FERRY_TENANT_DATA: data,
      FERRY_SCRATCH: spec.scratchRef,
    };

    const handle = await this.launch(ref, { program: this.opts.supervisorPath, args, env, cwd: ref });
    // Started means findable: the supervisor writes its pid file once the job runs.
    const pidFile = join(ref, 'pid');
    const wakeUp = new WakeUp();
    const unsubscribe = handle.onChange(wakeUp.wake);
    try {
      for (let waited = 0; !existsSync(pidFile); waited += 2) {
        if (waited > 10_000) throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} did not start the job within 10 s`);
        await wakeUp.wait(2);
        if (handle.state === 'exited') {
          if (!existsSync(pidFile) && !existsSync(join(ref, 'result'))) {
            throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} exited before starting the job`);
          }
          break;
        }
      }
    } finally {
      unsubscribe();
    }
  }

  /**
   * Starts a supervisor through the spawner, restarting the spawner if it died; spawns it from
   * Node when there is no spawner. A request the spawner took and never answered (it died) is
   * not sent again: the supervisor may run, and a second one would run the step twice; the pid
   * file tells.
   */
  private async launch(ref: string, request: SpawnRequest): Promise<SupervisorHandle> {
    if (this.closed) throw new FerryError('FERRY_INTERNAL', 'substrate closed');
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.spawner === null || !this.spawner.alive) await this.startSpawner();
      const spawner = this.spawner;
      if (!spawner?.alive) break;
      try {
        const { handle } = await spawner.spawn(request);
        return this.track(ref, handle);
      } catch (err) {
        if (err instanceof SpawnFailedError) {
          throw new FerryError('FERRY_INTERNAL', `cannot start the supervisor: ${err.message}`, {}, { cause: err });
        }
        // Died before it could have read the request: safe to ask a new one.
        if (err instanceof SpawnerUnreachableError) continue;
        if (!(err instanceof SpawnerGoneError)) throw err;
        const unknown = new SupervisorHandle();
        unknown.settle('untracked');
        return unknown;
      }
    }
    const child = spawn(request.program, request.args, { detached: true, stdio: 'ignore', env: request.env, cwd: request.cwd });
    child.unref();
    const handle = new SupervisorHandle();
    child.once('exit', () => handle.settle('exited'));
    child.once('error', () => handle.settle('exited'));
    await once(child, 'spawn').catch((err: Error) => {
      throw new FerryError('FERRY_INTERNAL', `cannot start the supervisor: ${err.message}`, {}, { cause: err });
    });
    return this.track(ref, handle);
  }

  private track(ref: string, handle: SupervisorHandle): SupervisorHandle {
    this.supervisors.set(ref, handle);
    handle.onChange(() => {
      if (this.supervisors.get(ref) === handle) this.supervisors.delete(ref);
    });
    return handle;
  }

  private async startSpawner(): Promise<void> {
    this.spawner = null;
    if (this.closed || this.opts.spawnerPath === null || !existsSync(this.opts.spawnerPath)) return;
    try {
      this.spawner = await Spawner.start(this.opts.spawnerPath);
    } catch {
      this.spawner = null;
    }
  }

  async watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    this.assertUnder('jobs', ref);
    this.assertOpen();
    let job: JobFile;
    try {
      job = JSON.parse(await readFile(join(ref, 'spec.json'), 'utf8')) as JobFile;
    } catch {
      this.assertOpen();
      return lost('Ferry has no record on disk that this step ever started');
    }
    const tail = new LogTail(job.logPath, job.logOffset, onLine);
    const own = this.supervisors.get(ref);
    // One wake-up for the whole watch, subscribed once to the supervisor's exit and to close().
    const wakeUp = new WakeUp();
    const unsubscribe = own?.onChange(wakeUp.wake);
    this.watching.add(wakeUp);
    try {
      let interval = 5;
      let pidMissingSince: number | null = null;
      for (;;) {
        this.assertOpen();
        const grew = await tail.read();
        this.assertOpen();
        // A supervisor this process started is watched through its exit event: while it lives there
        // is no result to look for, and the log is read often only while it grows, so a thousand
        // quiet jobs cost a stat each per second instead of ten.
        if (own?.state === 'running') {
          interval = grew ? OUTPUT_POLL_MS : Math.min(interval * 2, IDLE_POLL_MS);
          await wakeUp.wait(interval);
          continue;
        }
        const result = await readResult(ref);
        if (result) {
          await tail.read(true);
          await removeCgroups(job.cgroupDirs);
          return describe(result, job);
        }
        if (!this.sameBoot(job)) {
          // Its pids now name other processes (or nothing): never signal them.
          await tail.read(true);
          await removeCgroups(job.cgroupDirs);
          return lost('the machine restarted while the job ran (its boot id changed); it did not record how it ended');
        }
        const pid = await readPidFile(ref);
        let changed = grew;
        if (pid === null) {
          pidMissingSince ??= Date.now();
          if (Date.now() - pidMissingSince > 5000) {
            await removeCgroups(job.cgroupDirs);
            return lost('its supervisor never started the job');
          }
        } else if (!isAlive(pid.supervisor, pid.supervisorStart)) {
          // The supervisor may have written the result just before it exited.
          const late = await readResult(ref);
          if (late) continue;
          killGroup(pid.job, pid.jobStart);
          await tail.read(true);
          await removeCgroups(job.cgroupDirs);
          return lost('its supervisor died without recording how the job ended; the job was stopped');
        } else if (pidMissingSince !== null) {
          pidMissingSince = null;
          changed = true;
        }
        await wakeUp.wait(interval);
        interval = nextPollMs(interval, changed, { pollMs: this.opts.pollMs, idleMs: IDLE_POLL_MS });
      }
    } finally {
      unsubscribe?.();
      this.watching.delete(wakeUp);
    }
  }

  async stop(ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    const job = await readJobFile(ref);
    if (job && !this.sameBoot(job)) return;
    for (let i = 0; i < 250; i++) {
      if (existsSync(join(ref, 'result'))) return;
      const pid = await readPidFile(ref);
      if (pid) {
        // SIGUSR1 is the supervisor's cancel; it ignores SIGTERM, SIGINT and SIGHUP.
        if (isAlive(pid.supervisor, pid.supervisorStart)) signal(pid.supervisor, 'SIGUSR1');
        return;
      }
      if (!existsSync(join(ref, 'spec.json'))) return;
      await sleep(20);
    }
  }

  async remove(kind: ArtifactKind, ref: string): Promise<void> {
    switch (kind) {
      case 'job': {
        this.assertUnder('jobs', ref);
        const job = await readJobFile(ref);
        const pid = await readPidFile(ref);
        if (pid && !existsSync(join(ref, 'result')) && (job === null || this.sameBoot(job))) {
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
        await rm(ref, { recursive: true, force: true });
        await rm(`${ref}.ferry.json`, { force: true });
        return;
      case 'snapshot':
        this.assertUnder('snapshots', ref);
        await rm(ref, { recursive: true, force: true });
        await rm(`${ref}.ferry.json`, { force: true });
        return;
      case 'log':
        this.assertUnder('logs', ref);
        await rm(ref, { force: true });
        await rmdir(dirname(ref)).catch(() => undefined); // the migration's folder, once empty
        return;
    }
  }

  async listLabelled(): Promise<LabelledObject[]> {
    const out: LabelledObject[] = [];
    for (const [kind, root] of [
      ['scratch', this.roots.scratch],
      ['snapshot', this.roots.snapshots],
    ] as const) {
      for (const name of await readdir(root).catch(() => [] as string[])) {
        if (!name.endsWith('.ferry.json')) continue;
        const file = join(root, name);
        const meta = await readMeta(file);
        if (meta === null) {
          // One damaged file (a crash mid-write before writes were atomic, a full disk) must not hide every other artifact.
          this.opts.warn(`skipped ${file}: it is empty or not valid metadata; remove it, and the ${kind} next to it if it is not needed`);
          continue;
        }
        out.push({ kind, ref: join(root, name.slice(0, -'.ferry.json'.length)), migrationId: meta.migrationId, issue: meta.issue });
      }
    }
    for (const migration of await readdir(this.roots.jobs).catch(() => [] as string[])) {
      for (const step of await readdir(join(this.roots.jobs, migration)).catch(() => [] as string[])) {
        const ref = join(this.roots.jobs, migration, step);
        try {
          const job = JSON.parse(await readFile(join(ref, 'spec.json'), 'utf8')) as JobFile;
          out.push({ kind: 'job', ref, migrationId: job.migrationId, issue: job.issue });
        } catch {
          continue;
        }
      }
    }
    return out;
  }

  /**
   * Ends the spawner (never a supervisor or a job) and makes every pending watch reject with
   * FERRY_INTERNAL "substrate closed": the runner stops supervising, and the next start re-attaches.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const wakeUp of this.watching) wakeUp.wake();
    const spawner = this.spawner;
    this.spawner = null;
    await spawner?.close();
    this.supervisors.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new FerryError('FERRY_INTERNAL', 'substrate closed');
  }

  /** False only when the job recorded a boot id and the machine has booted since. */
  private sameBoot(job: JobFile): boolean {
    return !job.bootId || this.bootId === null || job.bootId === this.bootId;
  }

  /** Refuse any path outside the folder Ferry owns for that kind: tenant data can never be removed. */
  private assertUnder(root: keyof ProcessSubstrate['roots'], ref: string): void {
    const base = this.roots[root] + sep;
    if (!resolve(ref).startsWith(base) || resolve(ref) !== ref) {
      throw new FerryError('FERRY_INTERNAL', `refusing to touch ${ref}: it is not inside ${base}`);
    }
  }
}

async function readResult(ref: string): Promise<RawResult | null> {
  try {
    return JSON.parse(await readFile(join(ref, 'result'), 'utf8')) as RawResult;
  } catch {
    return null;
  }
}

async function readJobFile(ref: string): Promise<JobFile | null> {
  try {
    return JSON.parse(await readFile(join(ref, 'spec.json'), 'utf8')) as JobFile;
  } catch {
    return null;
  }
}

async function readPidFile(ref: string): Promise<PidFile | null> {
  try {
    const [supervisor, supervisorStart, job, jobStart] = (await readFile(join(ref, 'pid'), 'utf8')).trim().split(' ');
    return { supervisor: Number(supervisor), supervisorStart: supervisorStart ?? '', job: Number(job), jobStart: jobStart ?? '' };
  } catch {
    return null;
  }
}

/** Alive and the same process (start time matches), so a reused pid is never mistaken for it. */
function isAlive(pid: number, startTime: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); start time is field 22.
    return fields[19] === startTime && fields[0] !== 'Z';
  } catch {
    return false;
  }
}

function killGroup(pid: number, startTime: string): void {
  if (!isAlive(pid, startTime)) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

/** process.kill that tolerates the process ending between the liveness check and the signal (ESRCH). */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** A job's cgroup name, derived from its ref (`<migration>-a<attempt>-s<step>`), so it can be found without any record. */
function cgroupName(ref: string): string {
  return `${basename(dirname(ref))}-${basename(ref)}`;
}

function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID_FILE, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function lost(why: string): StepResult {
  return { exitCode: null, signal: null, cause: 'lost', detail: `lost: ${why}` };
}

function describe(r: RawResult, job: JobFile): StepResult {
  let detail: string;
  switch (r.cause) {
    case null:
      detail = 'exited with status 0';
      break;
    case 'limit-exceeded':
      detail = `killed: memory went above the declared peak ${formatQuantity('memory', job.limits.memory ?? 0)}`;
      break;
    case 'deadline':
      detail = `killed: ran longer than its timeout of ${Math.round((job.timeoutMs ?? 0) / 1000)} s`;
      break;
    case 'cancelled':
      detail = 'stopped: the migration was cancelled';
      break;
    default:
      detail = r.exitCode !== null ? `exited with status ${r.exitCode}` : `killed by ${r.signal}`;
  }
  return { exitCode: r.exitCode, signal: r.signal, cause: r.cause, detail };
}

/** Atomic (temporary file, fsync, rename, fsync of the folder): a crash leaves the old file or the new one, never an empty one. */
async function writeMeta(ref: string, meta: ArtifactMeta): Promise<void> {
  const final = `${ref}.ferry.json`;
  const temp = `${ref}.ferry.json.${process.pid}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify(meta));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, final);
  const dir = await open(dirname(final), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function readMeta(file: string): Promise<ArtifactMeta | null> {
  try {
    const meta = JSON.parse(await readFile(file, 'utf8')) as Partial<ArtifactMeta> | null;
    if (typeof meta?.migrationId !== 'string' || typeof meta.issue !== 'string') return null;
    return { migrationId: meta.migrationId, issue: meta.issue };
  } catch {
    return null;
  }
}

/**
 * A NUL byte ends a C string: the job would run another command or environment than the approved
 * request shows. Refused before anything is created; never silently cut. `=` in a name would move
 * the name's end the same way.
 */
function assertNoNul(spec: StepSpec): void {
  const bad = (why: string): FerryError =>
    new FerryError('FERRY_INVALID_REQUEST', `step ${spec.stepName} cannot run: ${why}; remove it from the request and file it again`);
  spec.argv.forEach((arg, i) => {
    if (arg.includes('\0')) throw bad(`its argument ${i} holds a NUL byte`);
  });
  if (spec.argv.length === 0) throw bad('it has no command');
  for (const [name, value] of Object.entries(spec.env)) {
    if (name === '' || name.includes('=') || name.includes('\0')) throw bad(`the environment variable name ${JSON.stringify(name)} is not valid`);
    if (value.includes('\0')) throw bad(`the value of its environment variable ${name} holds a NUL byte`);
  }
}

function assertPlainFolder(path: string, found: { isSymbolicLink(): boolean; isDirectory(): boolean }): void {
  if (found.isSymbolicLink()) {
    throw new FerryError('FERRY_INVALID_REQUEST', `the tenant's data folder ${path} is a symbolic link; give the folder's real path as its data`);
  }
  if (!found.isDirectory()) throw new FerryError('FERRY_INVALID_REQUEST', `the tenant's data ${path} is not a folder; give a folder as its data`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
