/**
 * Which swarm node holds each scratch and snapshot volume Ferry made, kept as one small file per
 * volume under `<dataDir>/swarm-volumes/`, written before the volume is made (as an artifact is
 * recorded before it exists), so a removal after a restart still knows where to go. A volume with
 * no place file is on the manager's own node (made before places were kept, or never made).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class VolumePlaces {
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'swarm-volumes');
  }

  init(): void {
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
  }

  /** The node id that holds the volume, or null (the manager's own node). */
  get(volume: string): string | null {
    try {
      return readFileSync(join(this.#dir, volume), 'utf8').trim() || null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  set(volume: string, nodeId: string): void {
    writeFileSync(join(this.#dir, volume), `${nodeId}\n`, { mode: 0o600 });
  }

  delete(volume: string): void {
    rmSync(join(this.#dir, volume), { force: true });
  }
}
