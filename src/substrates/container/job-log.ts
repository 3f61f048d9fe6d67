/**
 * Turns a container's multiplexed output into lines: each complete line goes to the attempt log
 * on the host and to `onLine`.
 *
 * Re-attach without duplicates: a watch always reads the container's output from its first byte
 * (the engine keeps it), calls `onLine` for every line, and writes to the log file only what is
 * not there yet. What is there is measured, not remembered: the job's container carries the log
 * file's size at the moment the step started (label `ferry.log-start`), so the step's portion
 * already written is `size - logStart` bytes. The file itself is the record, so a crash between
 * a write and any bookkeeping cannot duplicate or lose lines, and the file is only ever appended
 * to (a reader following it never sees it shrink). This relies on the engine replaying the same
 * bytes in the same order, which Docker's json-file and Podman's k8s-file log drivers do, and on
 * nothing else appending to the attempt log while a step runs (steps of an attempt run in order).
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const NEWLINE = 0x0a;

export class JobLog {
  readonly #fd: number;
  /** Bytes of this step's output that are already in the file. */
  readonly #skip: number;
  #emitted = 0;
  #lines = 0;
  readonly #onLine: (line: string) => void;
  readonly #partial: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)];
  #closed = false;

  constructor(logPath: string, logStart: number, onLine: (line: string) => void) {
    mkdirSync(dirname(logPath), { recursive: true });
    this.#fd = openSync(logPath, 'a');
    this.#skip = Math.max(0, fstatSync(this.#fd).size - logStart);
    this.#onLine = onLine;
  }

  /** Bytes of one stream (1 stdout, 2 stderr). Lines of the two streams are kept apart until complete. */
  push(stream: number, data: Buffer): void {
    if (this.#closed) return; // late frames after the watch gave up on the stream
    let buf = Buffer.concat([this.#partial[stream] ?? Buffer.alloc(0), data]);
    let nl = buf.indexOf(NEWLINE);
    while (nl !== -1) {
      this.#line(buf.subarray(0, nl + 1));
      buf = buf.subarray(nl + 1);
      nl = buf.indexOf(NEWLINE);
    }
    this.#partial[stream] = Buffer.from(buf);
  }

  /** End of output: a last line without a newline still counts (and gets one in the file). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      for (let stream = 0; stream < this.#partial.length; stream++) {
        const rest = this.#partial[stream];
        if (rest && rest.length > 0) this.#line(Buffer.concat([rest, Buffer.from('\n')]));
        this.#partial[stream] = Buffer.alloc(0);
      }
    } finally {
      closeSync(this.#fd);
    }
  }

  /** Complete lines handed to onLine so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Stop without writing a last partial line: a later full replay (a new JobLog) completes it. */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }

  #line(withNewline: Buffer): void {
    const start = this.#emitted;
    this.#emitted += withNewline.length;
    if (this.#emitted > this.#skip) {
      writeSync(this.#fd, withNewline.subarray(Math.max(0, this.#skip - start)));
    }
    let text = withNewline.toString('utf8', 0, withNewline.length - 1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    this.#lines++;
    this.#onLine(text);
  }
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
