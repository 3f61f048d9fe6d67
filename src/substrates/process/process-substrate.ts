/**
 * The `process` substrate (embedded default): every step runs as a local process group under a
 * small detached supervisor (native/ferry-supervise.c), so stopping or killing the Ferry server
 * never kills a migration. A job is its step folder:
 *
 *   <dataDir>/jobs/<migration>/a<attempt>-s<step>/   spec.json (written first), pid, result
 *
 * and its output goes straight from the job to the attempt log (no copy through Ferry), which
 * `watch` tails for `::ferry::` lines. The declared peak is enforced through cgroups.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import { formatQuantity } from '../../core/quantity.ts';
import type { FailureCause, Resources, Tenant } from '../../core/types.ts';
import {
  jobLabels,
  type ArtifactKind,
  type LabelledObject,
  type LimitsSupport,
  type StepResult,
  type StepSpec,
  type Substrate,
} from '../substrate.ts';
import { detectCgroups, removeCgroups, type CgroupDriver } from './cgroups.ts';

const execFileAsync = promisify(execFile);
/** Log polling of a job Ferry spawned itself (its exit is an event): while output grows, and when quiet. */
const OUTPUT_POLL_MS = 100;
const IDLE_POLL_MS = 1000;
const DEFAULT_SUPERVISOR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../build/ferry-supervise');

export interface ProcessSubstrateOptions {
  /** Ferry's data folder; jobs, scratch, snapshots and logs live below it. */
  readonly dataDir: string;
  /** What this node offers. Default: all cores (millicores) and all memory. */
  readonly capacity?: Resources | undefined;
  /** `auto` (default): use cgroups when writable, else run without limits and say so. `off`: never. */
  readonly cgroups?: 'auto' | 'off';
  /** Path of the built supervisor. Default: build/ferry-supervise of this package. */
  readonly supervisorPath?: string;
  /** How often a job is polled for output and exit when Ferry did not spawn it itself. Default 100 ms. */
  readonly pollMs?: number;
  /** Variables passed from Ferry's own environment to jobs. Default: PATH, HOME, LANG, LC_ALL, TZ. */
  readonly passEnv?: readonly string[];
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
  private readonly opts: Required<Omit<ProcessSubstrateOptions, 'capacity'>> & { capacity: Resources };
  private cgroups: CgroupDriver | null = null;
  private limitsSupport: LimitsSupport = { enforced: false, detail: 'not initialised' };
  /** Supervisors this process spawned: their exit is an event, not a poll. */
  private readonly children = new Map<string, ChildProcess>();
  private readonly roots: Record<'jobs' | 'scratch' | 'snapshots' | 'logs' | 'tenants', string>;

  constructor(options: ProcessSubstrateOptions) {
    const dataDir = resolve(options.dataDir);
    this.opts = {
      dataDir,
      capacity: options.capacity ?? { cpu: availableParallelism() * 1000, memory: totalmem() },
      cgroups: options.cgroups ?? 'auto',
      supervisorPath: options.supervisorPath ?? DEFAULT_SUPERVISOR,
      pollMs: options.pollMs ?? 100,
      passEnv: options.passEnv ?? ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'],
    };
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
    for (const dir of Object.values(this.roots)) mkdirSync(dir, { recursive: true });
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

  /** A tenant's data is a folder: its `data`, or <dataDir>/tenants/<id>. */
  tenantData(tenant: Tenant): string {
    return tenant.data || join(this.roots.tenants, tenant.id);
  }

  async tenantDataExists(tenant: Tenant): Promise<boolean> {
    return existsSync(this.tenantData(tenant));
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

  async createScratch(ref: string, spec: { migrationId: string; issue: string }): Promise<void> {
    this.assertUnder('scratch', ref);
    await mkdir(ref, { recursive: true });
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
    await mkdir(data, { recursive: true });
    for (const entry of await readdir(data)) await rm(join(data, entry), { recursive: true, force: true });
    await execFileAsync('cp', ['-a', '--reflink=auto', `${ref}/.`, `${data}/`]);
  }

  async start(spec: StepSpec, ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    await mkdir(dirname(ref), { recursive: true });
    // mkdir of the step folder is the start's point of no return: a second start of the same ref fails here.
    await mkdir(ref);
    await mkdir(dirname(spec.logPath), { recursive: true });
    // The tenant's data folder is the tenant's, not an artifact: created if missing, never removed.
    await mkdir(this.tenantData(spec.tenant), { recursive: true });
    const log = await open(spec.logPath, 'a');
    const logOffset = (await log.stat()).size;
    await log.close();

    let cgroups = null;
    if (this.cgroups) {
      try {
        cgroups = this.cgroups.create(`${spec.migrationId}-a${spec.attempt}-s${spec.stepIndex < 0 ? 'wipe' : spec.stepIndex}`, spec.limits);
      } catch (err) {
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
    };
    await writeFile(join(ref, 'spec.json'), JSON.stringify(job));

    const args = ['-d', ref, '-l', spec.logPath];
    if (spec.timeoutMs !== undefined) args.push('-t', String(spec.timeoutMs));
    if (cgroups?.oomFile) args.push('-o', cgroups.oomFile);
    for (const procs of cgroups?.procs ?? []) args.push('-j', procs);
    args.push('-w', spec.scratchRef, '--', ...spec.argv);

    const env: Record<string, string> = {};
    for (const name of this.opts.passEnv) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, spec.env, { FERRY_TENANT_DATA: this.tenantData(spec.tenant), FERRY_SCRATCH: spec.scratchRef });

    const child = spawn(this.opts.supervisorPath, args, { detached: true, stdio: 'ignore', env, cwd: ref });
    child.unref();
    this.children.set(ref, child);
    const exited = once(child, 'exit').catch(() => undefined);
    child.once('exit', () => this.children.delete(ref));
    child.once('error', () => this.children.delete(ref));
    await once(child, 'spawn').catch((err: Error) => {
      throw new FerryError('FERRY_INTERNAL', `cannot start the supervisor: ${err.message}`, {}, { cause: err });
    });
    // Started means findable: the supervisor writes its pid file once the job runs.
    const pidFile = join(ref, 'pid');
    for (let waited = 0; !existsSync(pidFile); waited += 2) {
      if (waited > 10_000) throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} did not start the job within 10 s`);
      const done = await Promise.race([exited.then(() => true), sleep(2).then(() => false)]);
      if (done && !existsSync(pidFile) && !existsSync(join(ref, 'result'))) {
        throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} exited before starting the job (exit ${child.exitCode})`);
      }
      if (done) break;
    }
  }

  async watch(ref: string, onLine: (line: string) => void): Promise<StepResult> {
    this.assertUnder('jobs', ref);
    let job: JobFile;
    try {
      job = JSON.parse(await readFile(join(ref, 'spec.json'), 'utf8')) as JobFile;
    } catch {
      return lost('Ferry has no record on disk that this step ever started');
    }
    const tail = new LogTail(job.logPath, job.logOffset, onLine);
    const child = this.children.get(ref);
    const childExit = child ? once(child, 'exit').catch(() => undefined) : null;
    let interval = 5;
    let pidMissingSince: number | null = null;
    for (;;) {
      const grew = await tail.read();
      // A supervisor this process spawned is watched through its exit event: while it lives there
      // is no result to look for, and the log is read often only while it grows, so a thousand
      // quiet jobs cost a stat each per second instead of ten.
      const ownAlive = child !== undefined && child.exitCode === null && child.signalCode === null;
      if (ownAlive) {
        interval = grew ? OUTPUT_POLL_MS : Math.min(interval * 2, IDLE_POLL_MS);
        await Promise.race([childExit, sleep(interval)]);
        continue;
      }
      const result = await readResult(ref);
      if (result) {
        await tail.read(true);
        removeCgroups(job.cgroupDirs);
        return describe(result, job);
      }
      const pid = await readPidFile(ref);
      if (pid === null) {
        pidMissingSince ??= Date.now();
        if (Date.now() - pidMissingSince > 5000) {
          removeCgroups(job.cgroupDirs);
          return lost('its supervisor never started the job');
        }
      } else if (!isAlive(pid.supervisor, pid.supervisorStart)) {
        // The supervisor may have written the result just before it exited.
        const late = await readResult(ref);
        if (late) continue;
        killGroup(pid.job, pid.jobStart);
        await tail.read(true);
        removeCgroups(job.cgroupDirs);
        return lost('its supervisor died without recording how the job ended; the job was stopped');
      }
      const wait = sleep(interval);
      await (childExit ? Promise.race([childExit, wait]) : wait);
      interval = Math.min(interval * 2, this.opts.pollMs);
    }
  }

  async stop(ref: string): Promise<void> {
    this.assertUnder('jobs', ref);
    for (let i = 0; i < 250; i++) {
      if (existsSync(join(ref, 'result'))) return;
      const pid = await readPidFile(ref);
      if (pid) {
        if (isAlive(pid.supervisor, pid.supervisorStart)) process.kill(pid.supervisor, 'SIGTERM');
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
        const pid = await readPidFile(ref);
        if (pid && !existsSync(join(ref, 'result'))) {
          killGroup(pid.job, pid.jobStart);
          if (isAlive(pid.supervisor, pid.supervisorStart)) process.kill(pid.supervisor, 'SIGKILL');
        }
        try {
          const job = JSON.parse(readFileSync(join(ref, 'spec.json'), 'utf8')) as JobFile;
          removeCgroups(job.cgroupDirs);
        } catch {
          // no spec: nothing was created
        }
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
        const meta = JSON.parse(await readFile(join(root, name), 'utf8')) as ArtifactMeta;
        out.push({ kind, ref: join(root, name.slice(0, -'.ferry.json'.length)), ...meta });
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

  async close(): Promise<void> {
    this.children.clear();
  }

  /** Refuse any path outside the folder Ferry owns for that kind: tenant data can never be removed. */
  private assertUnder(root: keyof ProcessSubstrate['roots'], ref: string): void {
    const base = this.roots[root] + sep;
    if (!resolve(ref).startsWith(base) || resolve(ref) !== ref) {
      throw new FerryError('FERRY_INTERNAL', `refusing to touch ${ref}: it is not inside ${base}`);
    }
  }
}

const NEWLINE = 0x0a;
const MARKER = Buffer.from('::ferry::');

/** Reads a log file from an offset and hands out complete lines. */
class LogTail {
  private offset: number;
  private partial = '';
  private readonly onLine: (line: string) => void;
  private readonly path: string;

  constructor(path: string, offset: number, onLine: (line: string) => void) {
    this.path = path;
    this.offset = offset;
    this.onLine = onLine;
  }

  /** Reads what was appended since the last call; true when there was something. */
  async read(final = false): Promise<boolean> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch {
      return false;
    }
    const grew = size > this.offset;
    if (size > this.offset) {
      const fh = await open(this.path, 'r');
      try {
        const buf = Buffer.allocUnsafe(1 << 20);
        while (this.offset < size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - this.offset), this.offset);
          if (bytesRead === 0) break;
          this.offset += bytesRead;
          this.feedBytes(buf, bytesRead);
        }
      } finally {
        await fh.close();
      }
    }
    if (final && this.partial) {
      this.onLine(this.partial);
      this.partial = '';
    }
    return grew;
  }

  /**
   * Most output holds no `::ferry::` line: find complete lines and the marker in the bytes, and
   * decode only what can hold one (the carried-over line and chunks with the marker), so a job
   * writing gigabytes costs reads, not string conversions.
   */
  private feedBytes(buf: Buffer, length: number): void {
    const bytes = buf.subarray(0, length);
    const last = bytes.lastIndexOf(NEWLINE);
    if (last !== -1 && bytes.subarray(0, last).indexOf(MARKER) === -1) {
      const head = this.partial + bytes.toString('utf8', 0, Math.min(last, MARKER.length));
      if (!head.includes('::ferry::')) {
        this.partial = bytes.toString('utf8', last + 1);
        if (this.partial.length > 65_536) this.partial = '';
        return;
      }
    }
    this.feed(bytes.toString('utf8'));
  }

  private feed(text: string): void {
    // Only `::ferry::` lines matter to the runner; skip the split for chunks without one.
    const chunk = this.partial + text;
    const last = chunk.lastIndexOf('\n');
    if (last === -1) {
      this.partial = chunk.length > 65_536 ? '' : chunk;
      return;
    }
    this.partial = chunk.slice(last + 1);
    if (this.partial.length > 65_536) this.partial = '';
    const complete = chunk.slice(0, last);
    if (!complete.includes('::ferry::')) return;
    for (const line of complete.split('\n')) if (line.startsWith('::ferry::')) this.onLine(line);
  }
}

async function readResult(ref: string): Promise<RawResult | null> {
  try {
    return JSON.parse(await readFile(join(ref, 'result'), 'utf8')) as RawResult;
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

async function writeMeta(ref: string, meta: ArtifactMeta): Promise<void> {
  await writeFile(`${ref}.ferry.json`, JSON.stringify(meta));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
