/**
 * Attempt logs served over HTTP. Followers (`?follow=true`) of the same (migration, attempt) share
 * one tail: one open file, one poll of its size and one check of the attempt's end per interval,
 * whatever the number of followers. Each follower pulls at its own pace: a slow client holds at
 * most its stream's buffer (64 KiB) in memory, never the log. The file is read in 64 KiB blocks
 * that followers share (the latest `sharedBlocks` of all logs are kept, 32 MiB by default): a
 * hundred followers a little apart cost one read per block, not a hundred, and a follower further
 * behind reads its own. A buffer per follower per block was garbage for V8 to collect, most of the
 * server's CPU with 100 followers. A follower whose client reads nothing for `stallMs` while there
 * is more to send is ended with a closing line.
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
  /** Blocks of 64 KiB kept for followers to share, all logs together. Default 512 (32 MiB). */
  readonly sharedBlocks?: number;
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

/** One CHUNK-aligned read of a log: `bytes` is null while it is in flight. */
interface Block {
  bytes: number | null;
  data: Promise<Buffer>;
}

export class LogFollowers {
  private readonly tails = new Map<string, SharedTail>();
  private readonly perToken = new Map<string, number>();
  private readonly blocks: SharedBlocks;
  private total = 0;
  private closed = false;

  constructor(private readonly opts: LogFollowersOptions) {
    this.blocks = new SharedBlocks(opts.sharedBlocks ?? 512);
  }

  /** Followers now, all tokens together (for tests and metrics). */
  get count(): number {
    return this.total;
  }

  /** Open tails now: one per followed (migration, attempt). */
  get tailCount(): number {
    return this.tails.size;
  }

  /** Reads of log files for followers so far (for tests and metrics). */
  get blockReads(): number {
    return this.blocks.reads;
  }

  /** Blocks kept now for followers to share, at most `sharedBlocks`. */
  get keptBlocks(): number {
    return this.blocks.kept.size;
  }

  /** Follow a log until its attempt ends. Throws FERRY_TOO_MANY_FOLLOWERS (429) or FERRY_BUSY (503). */
  follow(source: LogSource, token: string): Readable {
    if (this.closed) throw new FerryError('FERRY_BUSY', 'the server is stopping; follow the log again once it is back');
    const mine = this.perToken.get(token) ?? 0;
    if (mine >= this.opts.limits.perToken) {
      throw new FerryError(
        'FERRY_TOO_MANY_FOLLOWERS',
        `${token} already follows ${mine} logs, and a token may follow at most ${this.opts.limits.perToken} together (maxFollowersPerToken); stop one of them, or read the log without follow`,
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
        this.blocks,
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
    const tail = new SharedTail(source.path, null, 0, () => undefined, new SharedBlocks(0));
    return new TailReader(tail, new SecretMasker(source.secrets), 0, source.from ?? 0);
  }

  /** End every follower (the server is stopping). */
  close(): void {
    this.closed = true;
    for (const tail of [...this.tails.values()]) tail.end();
  }
}

/** The latest blocks read, of every followed log, in the order read; the oldest go past `limit`. */
class SharedBlocks {
  reads = 0;
  readonly kept = new Map<string, Block>();

  constructor(private readonly limit: number) {}

  keep(key: string, block: Block): void {
    this.kept.delete(key);
    if (this.limit <= 0) return;
    this.kept.set(key, block);
    if (this.kept.size > this.limit) this.kept.delete(this.kept.keys().next().value as string);
  }

  /** Drop `key` if it is still `block`. */
  forget(key: string, block: Block): void {
    if (this.kept.get(key) === block) this.kept.delete(key);
  }

  forgetAll(prefix: string): void {
    for (const key of this.kept.keys()) if (key.startsWith(prefix)) this.kept.delete(key);
  }
}

let tailSerial = 0;

/**
 * One log file and what is known of it: its size as of the last poll and whether the attempt has
 * ended. Readers wait on it; the poll runs while any reader waits.
 */
class SharedTail {
  size = 0;
  ended: boolean;
  private fh: Promise<FileHandle> | null = null;
  private readonly readers = new Set<TailReader>();
  /** This tail's prefix of the keys of its blocks. */
  private readonly id = `${++tailSerial}:`;
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
    private readonly blocks: SharedBlocks,
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
    this.blocks.forgetAll(this.id);
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

  /**
   * Up to `length` bytes of the log at `position` (fewer at a block's end or the file's), from the
   * CHUNK-aligned block that holds it: followers at the same place share one read.
   */
  async read(position: number, length: number): Promise<Buffer> {
    const start = position - (position % CHUNK);
    const want = Math.min(CHUNK, position - start + length);
    let block = this.blocks.kept.get(this.id + start);
    if (!block || (block.bytes !== null && block.bytes < want)) block = this.readBlock(start, want);
    let buf = await block.data;
    // Too short for `position` (a read begun before the log reached it, or a file that shrank): read
    // once more, since an empty piece ends a follower whose attempt has ended.
    if (buf.length <= position - start) buf = await this.readBlock(start, want).data;
    const piece = buf.subarray(position - start, Math.min(buf.length, position - start + length));
    // A small piece of a large block would keep the whole block alive in a slow follower's buffer.
    return piece.length * 2 < buf.length ? Buffer.from(piece) : piece;
  }

  private readBlock(start: number, want: number): Block {
    const key = this.id + start;
    // As much of the block as is known to exist: a block read while the log was shorter is read
    // again when a follower needs more of it.
    const block: Block = { bytes: null, data: this.readAt(start, Math.max(want, Math.min(CHUNK, this.size - start))) };
    // A failed read is not kept: the next follower to need the block tries again.
    void block.data.then(
      (buf) => (block.bytes = buf.length),
      () => this.blocks.forget(key, block),
    );
    this.blocks.reads++;
    this.blocks.keep(key, block);
    return block;
  }

  private async readAt(position: number, length: number): Promise<Buffer> {
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
