/** Reading a job's log from an offset, handing out complete `::ferry::` lines. */
import { open, stat } from 'node:fs/promises';
import { OUTPUT_PREFIX } from '../../core/job-output.ts';

const NEWLINE = 0x0a;
const MARKER = Buffer.from(OUTPUT_PREFIX);
/** Read size: the tail's buffer grows to this while a job writes a lot, and is kept for the next reads. */
const MAX_READ = 1 << 20;
const FIRST_READ = 1 << 16;

/** Reads a log file from an offset and hands out complete lines. */
export class LogTail {
  private offset: number;
  private partial = '';
  private readonly onLine: (line: string) => void;
  private readonly path: string;
  /**
   * One buffer per tail, reused by every read: a fresh 1 MiB per read made a thousand polled jobs
   * churn a gigabyte a second through the allocator. It starts small (a quiet job's tail holds
   * 64 KiB) and grows once to 1 MiB for a job that writes more between two reads.
   */
  private buffer: Buffer | null = null;

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
    if (grew) {
      const buf = this.bufferFor(size - this.offset);
      const fh = await open(this.path, 'r');
      try {
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

  private bufferFor(pending: number): Buffer {
    if (this.buffer === null || (this.buffer.length < MAX_READ && pending > this.buffer.length)) {
      this.buffer = Buffer.allocUnsafe(pending > FIRST_READ ? MAX_READ : FIRST_READ);
    }
    return this.buffer;
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
      if (!head.includes(OUTPUT_PREFIX)) {
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
    if (!complete.includes(OUTPUT_PREFIX)) return;
    for (const line of complete.split('\n')) if (line.startsWith(OUTPUT_PREFIX)) this.onLine(line);
  }
}
