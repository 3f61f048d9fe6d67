/**
 * How a finished job container becomes a StepResult. Pure: the facts come from the engine's
 * inspect and from the stop marker.
 */
import { constants } from 'node:os';
import { formatQuantity } from '../../core/quantity.ts';
import type { StepResult } from '../substrate.ts';
import type { StopMarker } from './stop-markers.ts';

export interface FinishedContainer {
  readonly exitCode: number;
  readonly oomKilled: boolean;
  /** The engine's OOM flag was read and can be trusted (Docker's): a SIGKILL without it is no memory kill. */
  readonly oomReported?: boolean;
  /** HostConfig.Memory in bytes; 0 or null when unlimited. */
  readonly memoryLimit: number | null;
  readonly timeoutMs: number | null;
}

const SIGKILL_EXIT = 128 + constants.signals.SIGKILL;

/**
 * Order of evidence: the engine's OOM flag, then Ferry's own stop intent, then the exit status.
 *
 * The trap: Podman on cgroup v1 (Podman 4.3 with runc, as on this project's machines) never sets
 * `State.OOMKilled`: the kernel kills the container's main process and the engine only reports
 * exit 137. So a container that had a memory limit and died of SIGKILL that Ferry did not send is
 * taken as over its memory limit, and the detail says that it was inferred. An operator's own
 * `kill -9` would be read the same way; the migration is held either way, and the sentence tells.
 */
export function stepResultOf(c: FinishedContainer, stop: StopMarker | null): StepResult {
  const signal = signalOf(c.exitCode);
  const limit = c.memoryLimit ? formatQuantity('memory', c.memoryLimit) : null;
  if (c.oomKilled) {
    return {
      exitCode: c.exitCode,
      signal,
      cause: 'limit-exceeded',
      detail: limit ? `killed: memory above the declared peak ${limit}` : 'killed: out of memory',
    };
  }
  if (stop?.cause === 'deadline') {
    const after = c.timeoutMs === null ? '' : ` of ${formatMs(c.timeoutMs)}`;
    return { exitCode: c.exitCode, signal, cause: 'deadline', detail: `stopped: ran past its timeout${after} (exit status ${c.exitCode})` };
  }
  if (stop?.cause === 'cancelled') {
    return { exitCode: c.exitCode, signal, cause: 'cancelled', detail: `stopped on request at ${stop.at} (exit status ${c.exitCode})` };
  }
  if (c.exitCode === 0) return { exitCode: 0, signal: null, cause: null, detail: 'exited with status 0' };
  if (c.exitCode === SIGKILL_EXIT && limit && !c.oomReported) {
    return {
      exitCode: c.exitCode,
      signal,
      cause: 'limit-exceeded',
      detail: `killed by SIGKILL while limited to ${limit} of memory: taken as memory above the declared peak ${limit} (the engine does not report OOM kills here)`,
    };
  }
  const by = signal ? ` (${signal})` : '';
  return { exitCode: c.exitCode, signal, cause: 'exit-code', detail: `exited with status ${c.exitCode}${by}` };
}

/** Engines report a signal death as 128 + n; a job may also exit with such a status itself. */
function signalOf(exitCode: number): string | null {
  if (exitCode <= 128) return null;
  const n = exitCode - 128;
  for (const [name, value] of Object.entries(constants.signals)) if (value === n) return name;
  return null;
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
