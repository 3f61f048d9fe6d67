/**
 * Attempt logs served over HTTP. Followers (`?follow=true`) of the same (migration, attempt) share
 * one tail: one open file, one poll of its size and one check of the attempt's end per interval,
 * whatever the number of followers. Each follower pulls from the shared file at its own pace: a
 * slow client holds at most its stream's buffer (64 KiB) in memory, never the log. A follower whose
 * client reads nothing for `stallMs` while there is more to send is ended with a closing line.
 *
 * Followers are bounded in total and per token; past the bound a follow is refused (429 per token,
 * 503 in total) rather than queued. One-shot reads (no follow) are not followers and are not counted.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { FerryError } from '../core/errors.ts';
import { SecretMasker } from './secret-masker.ts';

export interface FollowerLimits {
  /** Most followers at once, all tokens together. Default 200. */
  readonly total: number;
  /** Most followers at once of one token. Default 20. */
  readonly perToken: number;
}

export const DEFAULT_FOLLOWER_LIMITS: FollowerLimits = Object.freeze({ total: 200, perToken: 20 });

export interface LogFollowersOptions {
  readonly limits: FollowerLimits;
  /** Whether the attempt has ended (its log then grows no more). */
  readonly attemptEnded: (migrationId: string, attempt: number) => Promise<boolean>;
  /** How often a tail looks at its file and at the attempt. Default 200 ms. */
  readonly pollMs?: number;
  /** How long a follower may read nothing while there is more to send before it is ended. Default 120 s. */
  readonly stallMs?: number;
}

export interface LogSource {
  readonly migrationId: string;
  readonly attempt: number;
  readonly path: string;
  /** Secret values to mask in the text served. */
  readonly secrets: readonly string[];
  /** Byte offset to start reading at (a tail). Default 0. */
  readonly from?: number | undefined;
}

const CHUNK = 64 * 1024;

export class LogFollowers {
  private readonly tails = new Map<string, SharedTail>();
  private readonly perToken = new Map<string, number>();
  private total = 0;
  private closed = false;

  constructor(private readonly opts: LogFollowersOptions) {}

  /** Followers now, all tokens together (for tests and metrics). */
  get count(): number {
    return this.total;
  }

  /** Open tails now: one per followed (migration, attempt). */
  get tailCount(): number {
    return this.tails.size;
  }

  /** Follow a log until its attempt ends. Throws FERRY_TOO_MANY_FOLLOWERS (429) or FERRY_BUSY (503). */
  follow(source: LogSource, token: string): Readable {
    if (this.closed) throw new FerryError('FERRY_BUSY', 'the server is stopping; follow the log again once it is back');
    const mine = this.perToken.get(token) ?? 0;
    if (mine >= this.opts.limits.perToken) {
      throw new FerryError(
        'FERRY_TOO_MANY_FOLLOWERS',
        `${token} already follows ${mine} logs, and a token may follow at most ${this.opts.limits.perToken} together (maxFollowers.perToken); stop one of them, or read the log without follow`,
        { limit: this.opts.limits.perToken },
      );
    }
    if (this.total >= this.opts.limits.total) {
      throw new FerryError(
        'FERRY_BUSY',
        `the server already serves ${this.total} log followers, its bound (maxFollowers); try again later, or read the log without follow`,
        {
          limit: this.opts.limits.total,
        },
      );
    }
    const key = `${source.migrationId}/${source.attempt}`;
    let tail = this.tails.get(key);
    if (!tail) {
      tail = new SharedTail(
        source.path,
        () => this.opts.attemptEnded(source.migrationId, source.attempt),
        this.opts.pollMs ?? 200,
        () => this.tails.delete(key),
      );
      this.tails.set(key, tail);
    }
    this.total++;
    this.perToken.set(token, mine + 1);
    let released = false;
    const reader = new TailReader(tail, new SecretMasker(source.secrets), this.opts.stallMs ?? 120_000, source.from ?? 0);
    const release = () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perToken.get(token) ?? 1) - 1;
      if (left <= 0) this.perToken.delete(token);
      else this.perToken.set(token, left);
    };
    reader.once('close', release);
    reader.once('dropped', release);
    return reader;
  }

  /** The log as it is now, masked; not a follower. */
  readOnce(source: LogSource): Readable {
    const tail = new SharedTail(source.path, null, 0, () => undefined);
    return new TailReader(tail, new SecretMasker(source.secrets), 0, source.from ?? 0);
  }

  /** End every follower (the server is stopping). */
  close(): void {
    this.closed = true;
    for (const tail of [...this.tails.values()]) tail.end();
  }
}

/**
 * One log file and what is known of it: its size as of the last poll and whether the attempt has
 * ended. Readers wait on it; the poll runs while any reader waits.
 */
class SharedTail {
  size = 0;
  ended: boolean;
  private fh: Promise<FileHandle> | null = null;
  private readonly readers = new Set<TailReader>();
  private readonly waiting = new Set<() => void>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private first: Promise<void>;

  /** `attemptEnded` null: a one-shot read of the file as it is now. */
  constructor(
    private readonly path: string,
    private readonly attemptEnded: (() => Promise<boolean>) | null,
    private readonly pollMs: number,
    private readonly onEmpty: () => void,
  ) {
    this.ended = attemptEnded === null;
    this.first = this.poll();
  }

  attach(reader: TailReader): void {
    this.readers.add(reader);
  }

  detach(reader: TailReader): void {
    if (!this.readers.delete(reader) || this.readers.size > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ended = true;
    this.onEmpty();
    const fh = this.fh;
    this.fh = null;
    void fh?.then((h) => h.close()).catch(() => undefined);
  }

  /** Stop following: readers finish with what is already known. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Resolves once the first look at the file is done. */
  ready(): Promise<void> {
    return this.first;
  }

  /** Resolves at the next poll that learns something (or at the end). */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.add(resolve);
      this.schedule();
    });
  }

  async read(position: number, length: number): Promise<Buffer> {
    this.fh ??= open(this.path, 'r');
    const fh = await this.fh;
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  }

  private schedule(): void {
    if (this.timer !== null || this.polling || this.ended) {
      if (this.ended) this.wake();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, this.pollMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      // The end first, then the size: once ended, this size is the final one.
      const ended = this.attemptEnded ? await this.attemptEnded().catch(() => false) : true;
      const size = await stat(this.path).then(
        (s) => s.size,
        () => 0,
      );
      const grew = size > this.size;
      if (grew) this.size = size;
      if (ended) this.ended = true;
      if (grew || this.ended) this.wake();
    } finally {
      this.polling = false;
    }
    if (this.waiting.size > 0) this.schedule();
  }

  private wake(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const resolve of waiting) resolve();
  }
}

/** One client's view of a tail: its own offset, its own masker, pulled at the client's pace. */
class TailReader extends Readable {
  private offset = 0;
  private busy = false;
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly tail: SharedTail,
    private readonly masker: SecretMasker,
    private readonly stallMs: number,
    start: number,
  ) {
    super({ highWaterMark: CHUNK });
    this.offset = start;
    tail.attach(this);
  }

  override _read(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    if (this.busy) return;
    this.busy = true;
    this.pump().then(
      () => (this.busy = false),
      (err: unknown) => this.destroy(err as Error),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.tail.detach(this);
    callback(err);
  }

  /** Push until the stream wants no more (backpressure) or the log is done. */
  private async pump(): Promise<void> {
    await this.tail.ready();
    for (;;) {
      if (this.destroyed) return;
      if (this.offset < this.tail.size) {
        const chunk = await this.tail.read(this.offset, Math.min(CHUNK, this.tail.size - this.offset));
        if (chunk.length === 0) {
          // The file shrank or vanished: nothing more to read from it.
          this.tail.size = this.offset;
          continue;
        }
        this.offset += chunk.length;
        const out = this.masker.push(chunk);
        if (out.length > 0 && !this.push(out)) {
          this.watchStall();
          return;
        }
        continue;
      }
      if (this.tail.ended) {
        const rest = this.masker.flush();
        if (rest.length > 0) this.push(rest);
        this.push(null);
        return;
      }
      await this.tail.changed();
    }
  }

  /** The client has stopped reading: if it stays so for stallMs while there is more, end it. */
  private watchStall(): void {
    if (this.stallMs <= 0) return;
    this.stallTimer = setTimeout(() => {
      if (this.destroyed || this.readableEnded) return;
      this.push(
        `\n[ferry] this follower read nothing for ${Math.round(this.stallMs / 1000)} s while the log grew, so Ferry stopped following for it; follow again to read the log from the start\n`,
      );
      this.push(null);
      this.tail.detach(this);
      this.emit('dropped');
    }, this.stallMs);
    this.stallTimer.unref();
  }
}
