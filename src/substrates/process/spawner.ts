/**
 * Client of the fork server (native/ferry-spawner.c). Forking from Node copies the page tables of
 * its whole (~200 MB) process, synchronously on the event loop, for every job; the spawner is a
 * few hundred kB and does the fork and exec for it. It also reaps each supervisor it started and
 * reports its exit, which settles that supervisor's handle.
 *
 * The spawner never signals a supervisor. When it ends (close(), the server dying, or a crash),
 * the supervisors go on; the handles of those still running become `untracked`, and their
 * watchers fall back to polling the step folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { SupervisorHandle } from './supervisor-handle.ts';

export interface SpawnRequest {
  readonly program: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
}

/** EINVAL: the spawner's answer to a request it refuses (a field with a NUL byte, a malformed payload). */
const EINVAL = 22;

/** The spawner ran the request and it failed (fork, chdir or exec), or the request was refused: nothing runs. */
export class SpawnFailedError extends Error {
  readonly errno: number;
  constructor(errno: number, message = `the spawner could not start the supervisor (errno ${errno})`) {
    super(message);
    this.errno = errno;
  }
}

/** The request never reached the spawner (it had already died): nothing runs. */
export class SpawnerUnreachableError extends Error {
  constructor() {
    super('the spawner is gone');
  }
}

/** The spawner ended before answering: the supervisor may or may not have been started. */
export class SpawnerGoneError extends Error {
  constructor() {
    super('the spawner ended before answering');
  }
}

interface Pending {
  resolve(handle: { pid: number; handle: SupervisorHandle }): void;
  reject(err: Error): void;
}

/** How long close() waits for the spawner to exit on end of input before killing it (it never touches supervisors). */
const CLOSE_GRACE_MS = 2000;

export class Spawner {
  private readonly child: ChildProcess;
  private readonly stdin: Writable;
  private readonly stdout: Readable;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number, SupervisorHandle>();
  private partialLine = '';
  private ended = false;
  private readonly closed: Promise<unknown>;

  private constructor(child: ChildProcess) {
    this.child = child;
    if (!child.stdin || !child.stdout) throw new Error('the spawner has no pipes');
    this.stdin = child.stdin;
    this.stdout = child.stdout;
    this.closed = once(child, 'close').catch(() => undefined);
    // EPIPE when it died: its 'close' says the rest.
    this.stdin.on('error', () => undefined);
    this.stdout.setEncoding('latin1');
    this.stdout.on('data', (text: string) => this.onData(text));
    child.once('close', () => this.onEnd());
    // A CLI or test must be able to exit while the spawner idles: the pipes hold the event loop
    // only while a request waits for its answer.
    child.unref();
    this.idle();
  }

  /** Starts the spawner; rejects when it cannot run. */
  static async start(path: string): Promise<Spawner> {
    const child = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'], env: {} });
    await once(child, 'spawn');
    return new Spawner(child);
  }

  get alive(): boolean {
    return !this.ended;
  }

  /**
   * Starts a detached supervisor; resolves with its pid and a handle its exit settles. A request
   * with a NUL byte in any string is refused here (SpawnFailedError EINVAL) and never sent: C would
   * end the string there, and the supervisor would run something other than what was asked.
   */
  spawn(request: SpawnRequest): Promise<{ pid: number; handle: SupervisorHandle }> {
    if (this.ended) return Promise.reject(new SpawnerUnreachableError());
    const env = Object.entries(request.env).map(([k, v]) => `${k}=${v}`);
    const fields = [request.cwd, request.program, request.program, ...request.args, ...env];
    const withNul = fields.findIndex((f) => f.includes('\0'));
    if (withNul !== -1) {
      // Which field, never its value: an env value may be a secret.
      return Promise.reject(new SpawnFailedError(EINVAL, `refusing to start a supervisor: field ${withNul} of the request holds a NUL byte`));
    }
    const id = this.nextId++;
    const frame = encodeRequest(id, request.args.length + 1, env.length, fields);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.busy();
      this.stdin.write(frame, (err) => {
        // EPIPE: it died before this request reached it, so it cannot have run it.
        if (err && this.pending.delete(id)) reject(new SpawnerUnreachableError());
      });
    });
  }

  /** Ends the spawner (end of input); the supervisors it started go on. */
  async close(): Promise<void> {
    if (!this.ended) {
      this.stdin.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_GRACE_MS);
      await this.closed;
      clearTimeout(timer);
    }
  }

  private onData(text: string): void {
    const lines = (this.partialLine + text).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const line of lines) {
      const [kind, a = '', b = ''] = line.split(' ');
      if (kind === 'S' || kind === 'E') {
        const request = this.pending.get(Number(a));
        if (!request) continue;
        this.pending.delete(Number(a));
        if (kind === 'S') {
          // The handle exists before any later line of this chunk (its exit) is read.
          const handle = new SupervisorHandle();
          this.running.set(Number(b), handle);
          request.resolve({ pid: Number(b), handle });
        } else {
          request.reject(new SpawnFailedError(Number(b)));
        }
      } else if (kind === 'X') {
        const handle = this.running.get(Number(a));
        this.running.delete(Number(a));
        handle?.settle('exited');
      }
    }
    if (this.pending.size === 0) this.idle();
  }

  private onEnd(): void {
    this.ended = true;
    for (const request of this.pending.values()) request.reject(new SpawnerGoneError());
    this.pending.clear();
    for (const handle of this.running.values()) handle.settle('untracked');
    this.running.clear();
  }

  private busy(): void {
    (this.stdout as Readable & { ref?: () => void }).ref?.();
  }

  private idle(): void {
    (this.stdout as Readable & { unref?: () => void }).unref?.();
  }
}

/**
 * One request frame (see native/ferry-spawner.c): u32 payload length, then u32 id, u32 argc, u32
 * envc and every field as a u32 length and its bytes. Lengths, not separators, so no byte inside a
 * field can shift what the spawner reads.
 */
export function encodeRequest(id: number, argc: number, envc: number, fields: readonly string[]): Buffer {
  const encoded = fields.map((f) => Buffer.from(f, 'utf8'));
  const payloadLength = 12 + encoded.reduce((sum, b) => sum + 4 + b.length, 0);
  const frame = Buffer.allocUnsafe(4 + payloadLength);
  frame.writeUInt32LE(payloadLength, 0);
  frame.writeUInt32LE(id, 4);
  frame.writeUInt32LE(argc, 8);
  frame.writeUInt32LE(envc, 12);
  let at = 16;
  for (const bytes of encoded) {
    frame.writeUInt32LE(bytes.length, at);
    bytes.copy(frame, at + 4);
    at += 4 + bytes.length;
  }
  return frame;
}
