/** What a step's output tells the store: its `::ferry::checkpoint` and `::ferry::progress` lines. */
import { coerceError } from '../core/errors.ts';
import { parseOutputLine } from '../core/job-output.ts';
import type { Store } from '../store/store.ts';

/** Records checkpoint and progress lines, coalesced so a chatty job costs a write per 200 ms at most. */
export class StepOutputRecorder {
  private checkpoint: string | null = null;
  private progress: { done: number; total: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly store: Store;
  private readonly id: string;
  private readonly step: number;
  private readonly now: () => Date;
  private readonly warn: (msg: string) => void;

  constructor(store: Store, id: string, step: number, now: () => Date, warn: (msg: string) => void) {
    this.store = store;
    this.id = id;
    this.step = step;
    this.now = now;
    this.warn = warn;
  }

  line(line: string): void {
    const parsed = parseOutputLine(line);
    if (!parsed) return;
    if (parsed.kind === 'checkpoint') this.checkpoint = parsed.text;
    else this.progress = { done: parsed.done, total: parsed.total };
    this.timer ??= setTimeout(() => {
      this.timer = null;
      // A failed write keeps the values for the next one (or flush); it must never be an
      // unhandled rejection, which would end the server.
      this.writing = this.writing
        .then(() => this.write())
        .catch((err: unknown) => this.warn(`cannot record progress of ${this.id} yet: ${coerceError(err).message}`));
    }, 200);
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.writing;
    await this.write();
  }

  private async write(): Promise<void> {
    const checkpoint = this.checkpoint;
    const progress = this.progress;
    if (checkpoint === null && progress === null) return;
    // Taken before the await: a line arriving during the write is kept for the next one.
    this.checkpoint = null;
    this.progress = null;
    try {
      await this.store.updateMigration(
        this.id,
        { ...(checkpoint === null ? {} : { checkpoint: { step: this.step, text: checkpoint } }), ...(progress === null ? {} : { progress }) },
        this.now(),
      );
    } catch (err) {
      // Not written: put back what no newer line replaced meanwhile.
      this.checkpoint ??= checkpoint;
      this.progress ??= progress;
      throw err;
    }
  }
}
