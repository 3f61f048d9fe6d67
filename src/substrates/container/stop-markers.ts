/**
 * Why Ferry stopped a job container, kept on the host so it survives a runner restart.
 *
 * A container's labels cannot change after creation and its exit code (143/137) does not say who
 * stopped it, so the intent is written to `<dataDir>/container-stops/<jobRef>.json` *before* the
 * engine is asked to stop the container. A re-attached watch then reports `cancelled` or
 * `deadline` rather than `exit-code`. The first intent wins: a deadline that already struck is not
 * turned into a cancel. The marker is removed with the job (`remove('job', ref)`).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type StopCause = 'cancelled' | 'deadline';

export interface StopMarker {
  readonly cause: StopCause;
  readonly at: string;
}

export class StopMarkers {
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'container-stops');
  }

  init(): void {
    mkdirSync(this.#dir, { recursive: true });
  }

  read(ref: string): StopMarker | null {
    try {
      const parsed = JSON.parse(readFileSync(this.#path(ref), 'utf8')) as Partial<StopMarker>;
      if (parsed.cause === 'cancelled' || parsed.cause === 'deadline') return { cause: parsed.cause, at: String(parsed.at) };
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Record the intent unless one is already recorded; returns the one in force. */
  write(ref: string, cause: StopCause, now: Date): StopMarker {
    const existing = this.read(ref);
    if (existing) return existing;
    const marker: StopMarker = { cause, at: now.toISOString() };
    mkdirSync(this.#dir, { recursive: true });
    const tmp = `${this.#path(ref)}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(marker));
    renameSync(tmp, this.#path(ref));
    return marker;
  }

  delete(ref: string): void {
    rmSync(this.#path(ref), { force: true });
  }

  #path(ref: string): string {
    return join(this.#dir, `${ref}.json`);
  }
}
