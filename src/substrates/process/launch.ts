/**
 * Starting a step's supervisor (native/ferry-supervise.c): its command line and environment, and
 * the launch itself. Supervisors are started by a small fork server (native/ferry-spawner.c), so
 * the server never forks its own large process (~10 ms of blocked event loop per job) and learns
 * of their exits as events; without it, they are spawned from Node (docs/decisions.md,
 * "Supervisors are started by a fork server").
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { FerryError } from '../../core/errors.ts';
import type { Identity } from '../../core/types.ts';
import type { StepSpec } from '../substrate.ts';
import type { JobCgroups } from './cgroups.ts';
import { SpawnFailedError, Spawner, SpawnerGoneError, SpawnerUnreachableError, type SpawnRequest } from './spawner.ts';
import { SupervisorHandle, WakeUp } from './supervisor-handle.ts';
import { PID_FILE, pidPath, resultPath } from './step-folder.ts';

/** A job's PATH unless its request sets one: Ferry's own PATH is Ferry's business. */
const JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What the supervisor of one step is told. */
export interface SupervisorArgs {
  readonly supervisorPath: string;
  readonly ref: string;
  readonly logLimit: number;
  readonly tenantData: string;
  /** The job's cgroups, when limits are enforced. */
  readonly cgroups: JobCgroups | null;
  /** The tenant's identity when the job is confined, else null (it runs as Ferry's user). */
  readonly runAs: Identity | null;
}

/**
 * The supervisor's command line and environment. Every value is its own argv element and every
 * path absolute: none can be read as an option or split. The environment is the job's: nothing of
 * Ferry's own (tokens, secrets) is passed on.
 */
export function supervisorRequest(spec: StepSpec, s: SupervisorArgs): SpawnRequest {
  const args = ['-d', s.ref, '-l', spec.logPath, '-L', String(s.logLimit)];
  if (spec.timeoutMs !== undefined) args.push('-t', String(spec.timeoutMs));
  if (s.cgroups?.oomFile) args.push('-o', s.cgroups.oomFile);
  for (const procs of s.cgroups?.procs ?? []) args.push('-j', procs);
  if (s.runAs) args.push('-i', '-u', String(s.runAs.uid), '-g', String(s.runAs.gid), '-D', s.tenantData);
  args.push('-w', spec.scratchRef, '--', ...spec.argv);
  const env: Record<string, string> = {
    PATH: JOB_PATH,
    HOME: spec.scratchRef,
    ...spec.env,
    FERRY_TENANT_DATA: s.tenantData,
    FERRY_SCRATCH: spec.scratchRef,
  };
  return { program: s.supervisorPath, args, env, cwd: s.ref };
}

/**
 * A NUL byte ends a C string: the job would run another command or environment than the approved
 * request shows. Refused before anything is created; never silently cut. `=` in a name would move
 * the name's end the same way.
 */
export function assertNoNul(spec: StepSpec): void {
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

/** How long the supervisor may take to start the job, and how often its folder is looked at when no event says so. */
const PID_WAIT_MS = 10_000;
const PID_POLL_MS = 2;
const PID_POLL_WATCHED_MS = 50;

/**
 * Started means findable: waits until the supervisor has written its pid file (it does once the job
 * runs). The file is renamed into the step folder, which inotify reports: a look every 2 ms cost
 * ~0.2 ms of CPU each on a busy 2-core machine, ~2 ms per start. The look every 50 ms stays for
 * an event that never comes (no inotify watch left), and the 2 ms one where no watch could be set.
 */
export async function waitForPidFile(ref: string, handle: SupervisorHandle): Promise<void> {
  const pidFile = pidPath(ref);
  const wakeUp = new WakeUp();
  const unsubscribe = handle.onChange(wakeUp.wake);
  // Set before the first look, so a rename between the two is not missed.
  const watcher = watchFor(ref, PID_FILE, wakeUp.wake);
  const pollMs = watcher ? PID_POLL_WATCHED_MS : PID_POLL_MS;
  const started = performance.now();
  try {
    while (!existsSync(pidFile)) {
      if (performance.now() - started > PID_WAIT_MS) throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} did not start the job within 10 s`);
      await wakeUp.wait(pollMs);
      if (handle.state === 'exited') {
        if (!existsSync(pidFile) && !existsSync(resultPath(ref))) {
          throw new FerryError('FERRY_INTERNAL', `the supervisor of ${ref} exited before starting the job`);
        }
        break;
      }
    }
  } finally {
    unsubscribe();
    watcher?.close();
  }
}

/** A watch of `dir` that calls `onName` when an entry named `name` appears or changes there; null when none can be set. */
function watchFor(dir: string, name: string, onName: () => void): FSWatcher | null {
  try {
    const watcher = watch(dir, { persistent: false }, (_event, file) => {
      if (file === null || file === name) onName();
    });
    // An error ends the events, never the wait: the poll goes on.
    watcher.on('error', () => undefined);
    return watcher;
  } catch {
    return null;
  }
}

/** Starts supervisors and keeps the handles of those it started, by job ref, until they exit. */
export class Launcher {
  private readonly spawnerPath: string | null;
  /** Supervisors this process started, by job ref: their exit is an event, not a poll. */
  private readonly supervisors = new Map<string, SupervisorHandle>();
  private spawner: Spawner | null = null;
  private closed = false;

  /** `spawnerPath` null: always spawn from Node. */
  constructor(spawnerPath: string | null) {
    this.spawnerPath = spawnerPath;
  }

  /** Starts the spawner. Without it (not built, or it cannot run) every launch falls back to spawning from Node. */
  async start(): Promise<void> {
    await this.startSpawner();
  }

  /** The handle of a supervisor this process started and that has not been reported ended, if any. */
  handleOf(ref: string): SupervisorHandle | undefined {
    return this.supervisors.get(ref);
  }

  /**
   * Starts a supervisor through the spawner, restarting the spawner if it died; spawns it from
   * Node when there is no spawner. A request the spawner took and never answered (it died) is
   * not sent again: the supervisor may run, and a second one would run the step twice; the pid
   * file tells.
   */
  async launch(ref: string, request: SpawnRequest): Promise<SupervisorHandle> {
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

  /** Ends the spawner, never a supervisor: they go on, and the next start re-attaches their jobs. */
  async close(): Promise<void> {
    this.closed = true;
    const spawner = this.spawner;
    this.spawner = null;
    await spawner?.close();
    this.supervisors.clear();
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
    if (this.closed || this.spawnerPath === null || !existsSync(this.spawnerPath)) return;
    try {
      this.spawner = await Spawner.start(this.spawnerPath);
    } catch {
      this.spawner = null;
    }
  }
}
