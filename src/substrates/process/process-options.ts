/**
 * Options of the `process` substrate, resolved once into a frozen config (STYLE.md §7).
 */
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../../core/errors.ts';
import type { Resources } from '../../core/types.ts';

const BUILD = resolve(dirname(fileURLToPath(import.meta.url)), '../../../build');
const DEFAULT_SUPERVISOR = join(BUILD, 'ferry-supervise');
const DEFAULT_SPAWNER = join(BUILD, 'ferry-spawner');
const DEFAULT_LOG_LIMIT = 64 * 1024 * 1024;

export interface ProcessSubstrateOptions {
  /** Ferry's data folder; jobs, scratch, snapshots and logs live below it. */
  readonly dataDir: string;
  /** What this node offers. Default: all cores (millicores) and all memory. */
  readonly capacity?: Resources | undefined;
  /** `auto` (default): use cgroups when writable, else run without limits and say so. `off`: never. */
  readonly cgroups?: 'auto' | 'off';
  /** Path of the built supervisor. Default: build/ferry-supervise of this package. */
  readonly supervisorPath?: string;
  /**
   * Path of the built fork server that spawns supervisors, or `null` to spawn them from Node (about
   * 10 ms of blocked event loop per job). Default: build/ferry-spawner of this package, when built.
   */
  readonly spawnerPath?: string | null;
  /**
   * How soon a job Ferry did not spawn itself (re-attached) is looked at again after its output
   * grew; with no change the wait doubles up to 1 s. Default 100 ms.
   */
  readonly pollMs?: number;
  /**
   * Confinement of jobs. `auto` (default): confine when the host can (Ferry runs as root, the kernel
   * allows mount and PID namespaces), else run jobs unconfined and say so (`isolation()`).
   * `required`: refuse to start (init() throws) where jobs cannot be confined. `off`: never confine.
   */
  readonly isolation?: 'auto' | 'required' | 'off';
  /**
   * Bytes of output kept per step in the attempt log. Default 64 MiB. Past it, the first and the
   * last half are kept, with a line saying how many bytes were dropped between them; `::ferry::`
   * lines from the middle still reach the log.
   */
  readonly logLimit?: number;
  /** Where to say that something was skipped (a damaged metadata file). Default: nowhere. */
  readonly warn?: ((msg: string) => void) | undefined;
}

export type ProcessSubstrateConfig = Readonly<Required<Omit<ProcessSubstrateOptions, 'capacity' | 'warn'>>> & {
  readonly capacity: Resources;
  readonly warn: (msg: string) => void;
};

export function resolveProcessOptions(options: ProcessSubstrateOptions): ProcessSubstrateConfig {
  const config: ProcessSubstrateConfig = {
    dataDir: resolve(options.dataDir),
    capacity: options.capacity ?? { cpu: availableParallelism() * 1000, memory: totalmem() },
    cgroups: options.cgroups ?? 'auto',
    supervisorPath: options.supervisorPath ?? DEFAULT_SUPERVISOR,
    spawnerPath: options.spawnerPath === undefined ? DEFAULT_SPAWNER : options.spawnerPath,
    pollMs: options.pollMs ?? 100,
    isolation: options.isolation ?? 'auto',
    logLimit: options.logLimit ?? DEFAULT_LOG_LIMIT,
    warn: options.warn ?? (() => undefined),
  };
  if (!Number.isSafeInteger(config.logLimit) || config.logLimit < 2) {
    throw new FerryError('FERRY_INTERNAL', `logLimit must be a whole number of bytes, at least 2 (got ${String(options.logLimit)})`);
  }
  return Object.freeze(config);
}
