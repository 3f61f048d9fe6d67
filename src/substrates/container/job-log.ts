/**
 * Turns a container's multiplexed output into lines: complete lines go to the attempt log on the
 * host and to `onLine`, within a bound on what one step may append to the log.
 *
 * Re-attach without duplicates: a watch always reads the container's output from its first byte
 * (the engine keeps it), and writes to the log file only what is not there yet. What is there is
 * measured, not remembered: the job's container carries the log file's size at the moment the step
 * started (label `ferry.log-start`), so the step's portion already written is `size - logStart`
 * bytes. The file itself is the record, so a crash between a write and any bookkeeping cannot
 * duplicate or lose lines, and the file is only ever appended to (a reader following it never sees
 * it shrink). This relies on the engine replaying the same bytes in the same order, which Docker's
 * json-file and Podman's k8s-file log drivers do, and on nothing else appending to the attempt log
 * while a step runs (steps of an attempt run in order).
 *
 * The bound (`logLimit`, bytes per step): the first half as it comes (whole lines while they fit),
 * then a ring of the last half; at the end, one line saying how many bytes were dropped, then the
 * ring from its first full line. `::ferry::` lines from the dropped middle are still written, cut
 * to 4 KiB, until 1 MiB of them was; past that only the latest checkpoint and progress are kept and
 * written just before the end line. Every `::ferry::` line reaches `onLine` as it comes, wherever
 * it is; other lines past the head do not (the contract allows passing only those; the runner
 * reads nothing else), so a job printing gigabytes costs no string per line.
 *
 * How re-attach and the bound fit together: what a JobLog writes is a pure function of the
 * sequence of lines and of the limit, so the "skip what the file already holds" rule above applies
 * unchanged to the bounded stream: a replay recomputes the same head, the same middle `::ferry::`
 * lines and the same end section, and appends only the bytes past the file's size. Two choices make
 * this hold:
 * - the limit a step started with is kept on its container (label `ferry.log-limit`), so a runner
 *   restarted with another `logLimit` still completes that step's log consistently;
 * - a `::ferry::` line from the middle is written when it leaves the ring (then it is known to be
 *   dropped), not when it arrives: a line that ends up in the tail is then written once, in the
 *   tail, and an output within the limit is kept byte for byte. It reaches `onLine` at once, so the
 *   runner records checkpoints without that delay.
 * The end section is written only by close(), i.e. once the job's whole output was read; a watch
 * that is abandoned (runner stopping) writes nothing of it, and the next watch's replay does.
 *
 * Very long lines: a line is cut every 64 KiB (each piece gets a newline), so a job printing no
 * newline cannot make the runner buffer its whole output. Only the first piece of a line can be a
 * `::ferry::` line.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { OUTPUT_PREFIX } from '../../core/job-output.ts';

const NEWLINE = 0x0a;
const NL = Buffer.from('\n');
/** Longest piece of a line handled at once. */
const MAX_LINE_PIECE = 64 * 1024;
/** A `::ferry::` line is cut to this many bytes (before its newline) in the log and for onLine. */
const MAX_SIGNAL_LINE = 4096;
/** Default bytes of `::ferry::` lines from a step's dropped middle written as they leave the ring. */
const DEFAULT_SIGNAL_BUDGET = 1024 * 1024;
const SIGNAL_PREFIX = Buffer.from(OUTPUT_PREFIX);
const CHECKPOINT_PREFIX = Buffer.from(`${OUTPUT_PREFIX}checkpoint`);
const PROGRESS_PREFIX = Buffer.from(`${OUTPUT_PREFIX}progress`);

export interface JobLogBound {
  /** Most bytes of the step's output kept in the log: the first half and the last half. */
  readonly limit: number;
  /** Bytes of `::ferry::` lines from the dropped middle written before only the latest are kept. Default 1 MiB. */
  readonly signalBudget?: number | undefined;
}

interface RingEntry {
  /** The line as it would be written, newline included. */
  readonly bytes: Buffer;
  /** Its `::ferry::` form (cut to MAX_SIGNAL_LINE), or null when it is not such a line. */
  readonly signal: Buffer | null;
}

export class JobLog {
  readonly #fd: number;
  /** Bytes of this step's log portion that are already in the file. */
  readonly #skip: number;
  #emitted = 0;
  #lines = 0;
  readonly #onLine: (line: string) => void;
  readonly #partial: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)];
  /** Whether each stream's next byte starts a line (false after a cut of a long line). */
  readonly #atStart: boolean[] = [true, true, true];
  #closed = false;

  readonly #limit: number;
  #headLeft: number;
  #headOpen = true;
  readonly #tailMax: number;
  #ring: RingEntry[] = [];
  #ringFirst = 0;
  #ringBytes = 0;
  /** Bytes of output past the head that are not in the log. */
  #dropped = 0;
  readonly #signalBudget: number;
  #signalLeft: number;
  /** `::ferry::` lines of the middle past the budget: how many, and the latest of each kind. */
  #signalsElided = 0;
  #latestCheckpoint: Buffer | null = null;
  #latestProgress: Buffer | null = null;

  /** `bound` absent: no bound (the whole output is written). */
  constructor(logPath: string, logStart: number, onLine: (line: string) => void, bound?: JobLogBound) {
    mkdirSync(dirname(logPath), { recursive: true });
    this.#fd = openSync(logPath, 'a');
    this.#skip = Math.max(0, fstatSync(this.#fd).size - logStart);
    this.#onLine = onLine;
    this.#limit = bound ? bound.limit : Infinity;
    this.#headLeft = bound ? Math.floor(bound.limit / 2) : Infinity;
    this.#tailMax = bound ? bound.limit - Math.floor(bound.limit / 2) : Infinity;
    this.#signalBudget = bound?.signalBudget ?? DEFAULT_SIGNAL_BUDGET;
    this.#signalLeft = this.#signalBudget;
  }

  /** Bytes of one stream (1 stdout, 2 stderr). Lines of the two streams are kept apart until complete. */
  push(stream: number, data: Buffer): void {
    if (this.#closed) return; // late frames after the watch gave up on the stream
    const rest = this.#partial[stream] ?? Buffer.alloc(0);
    const buf = rest.length ? Buffer.concat([rest, data]) : data;
    let start = 0;
    for (;;) {
      const window = buf.subarray(start, start + MAX_LINE_PIECE + 1);
      const nl = window.indexOf(NEWLINE);
      if (nl !== -1) {
        this.#line(buf.subarray(start, start + nl + 1), stream);
        this.#atStart[stream] = true;
        start += nl + 1;
      } else if (window.length > MAX_LINE_PIECE) {
        this.#line(Buffer.concat([buf.subarray(start, start + MAX_LINE_PIECE), NL]), stream);
        this.#atStart[stream] = false;
        start += MAX_LINE_PIECE;
      } else {
        break;
      }
    }
    // A copy: the partial must not keep the whole chunk alive.
    this.#partial[stream] = Buffer.from(buf.subarray(start));
  }

  /** End of output: a last line without a newline still counts (and gets one), then the end section. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      for (let stream = 0; stream < this.#partial.length; stream++) {
        const rest = this.#partial[stream];
        if (rest && rest.length > 0) this.#line(Buffer.concat([rest, NL]), stream);
        this.#partial[stream] = Buffer.alloc(0);
      }
      if (this.#dropped > 0) {
        if (this.#latestCheckpoint) this.#emit(this.#latestCheckpoint);
        if (this.#latestProgress) this.#emit(this.#latestProgress);
        this.#emit(Buffer.from(`${this.#droppedLine()}\n`));
      }
      for (let i = this.#ringFirst; i < this.#ring.length; i++) this.#emit(this.#ring[i]!.bytes);
    } finally {
      this.#release();
    }
  }

  /** Lines handed to onLine so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Stop without writing a last partial line or the end section: a later full replay (a new JobLog) completes them. */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#release();
  }

  #release(): void {
    this.#ring = [];
    this.#ringFirst = 0;
    closeSync(this.#fd);
  }

  #line(bytes: Buffer, stream: number): void {
    const signal = this.#atStart[stream] && startsWith(bytes, SIGNAL_PREFIX) ? cutSignal(bytes) : null;
    if (this.#headOpen) {
      if (bytes.length <= this.#headLeft) {
        this.#headLeft -= bytes.length;
        this.#emit(bytes);
        this.#deliver(signal ?? bytes);
        return;
      }
      // The first line that does not fit ends the head: the head is a prefix of the output.
      this.#headOpen = false;
    }
    if (signal) this.#deliver(signal);
    this.#ring.push({ bytes, signal });
    this.#ringBytes += bytes.length;
    while (this.#ringBytes > this.#tailMax) {
      const oldest = this.#ring[this.#ringFirst]!;
      this.#ringFirst++;
      this.#ringBytes -= oldest.bytes.length;
      this.#leaveRing(oldest);
    }
    if (this.#ringFirst > 1024 && this.#ringFirst * 2 > this.#ring.length) {
      this.#ring = this.#ring.slice(this.#ringFirst);
      this.#ringFirst = 0;
    }
  }

  /** A line of the dropped middle. */
  #leaveRing(entry: RingEntry): void {
    const signal = entry.signal;
    if (signal && signal.length <= this.#signalLeft) {
      this.#signalLeft -= signal.length;
      this.#emit(signal);
      this.#dropped += entry.bytes.length - signal.length;
      return;
    }
    if (signal) {
      this.#signalsElided++;
      if (startsWith(signal, CHECKPOINT_PREFIX)) this.#latestCheckpoint = signal;
      else if (startsWith(signal, PROGRESS_PREFIX)) this.#latestProgress = signal;
    }
    this.#dropped += entry.bytes.length;
  }

  #droppedLine(): string {
    const half = Math.floor(this.#limit / 2);
    const elided =
      this.#signalsElided > 0
        ? `, ${this.#signalsElided} ::ferry:: lines among them (past the ${this.#signalBudget} bytes of such lines kept; the latest checkpoint and progress are just above)`
        : '';
    return `── ferry: ${this.#dropped} bytes of this step's output dropped here${elided}; the log keeps the first ${half} and the last ${this.#tailMax} bytes of each step (logLimit ${this.#limit}) ──`;
  }

  #emit(bytes: Buffer): void {
    const start = this.#emitted;
    this.#emitted += bytes.length;
    if (this.#emitted > this.#skip) writeSync(this.#fd, bytes.subarray(Math.max(0, this.#skip - start)));
  }

  #deliver(withNewline: Buffer): void {
    let text = withNewline.toString('utf8', 0, withNewline.length - 1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    this.#lines++;
    this.#onLine(text);
  }
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** A `::ferry::` line cut to MAX_SIGNAL_LINE bytes, newline kept. */
function cutSignal(line: Buffer): Buffer {
  if (line.length - 1 <= MAX_SIGNAL_LINE) return line;
  return Buffer.concat([line.subarray(0, MAX_SIGNAL_LINE), NL]);
}

/**
 * Splits the Engine API's multiplexed stream (8-byte frame headers: stream id, 3 zero bytes,
 * big-endian length) into frames, across chunk boundaries.
 */
export class FrameDemuxer {
  #pending: Buffer = Buffer.alloc(0);
  readonly #onFrame: (stream: number, data: Buffer) => void;

  constructor(onFrame: (stream: number, data: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let buf = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (buf.length >= 8) {
      const stream = buf.readUInt8(0);
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      // Stream 0 (stdin) never carries output; anything else unknown is kept as stdout.
      this.#onFrame(stream === 2 ? 2 : 1, buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
    }
    this.#pending = Buffer.from(buf);
  }
}
