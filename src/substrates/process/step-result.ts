/**
 * How a process job's end becomes a StepResult, in words an operator reads on the migration. Pure:
 * the facts come from the step folder (the supervisor's `result`, the limits in `spec.json`).
 */
import { formatQuantity } from '../../core/quantity.ts';
import type { StepResult } from '../substrate.ts';
import type { JobFile, RawResult } from './step-folder.ts';

/** A job whose end nobody recorded: the migration is held, nothing is re-run (docs/decisions.md, "What counts as lost"). */
export function lost(why: string): StepResult {
  return { exitCode: null, signal: null, cause: 'lost', detail: `lost: ${why}` };
}

/** The supervisor's result, with the declared peak and timeout it was held to. */
export function stepResultOf(r: RawResult, job: Pick<JobFile, 'limits' | 'timeoutMs'>): StepResult {
  let detail: string;
  switch (r.cause) {
    case null:
      detail = 'exited with status 0';
      break;
    case 'limit-exceeded':
      detail = `killed: memory went above the declared peak ${formatQuantity('memory', job.limits.memory ?? 0)}`;
      break;
    case 'deadline':
      detail = `killed: ran longer than its timeout of ${Math.round((job.timeoutMs ?? 0) / 1000)} s`;
      break;
    case 'cancelled':
      detail = 'stopped: the migration was cancelled';
      break;
    default:
      detail = r.exitCode !== null ? `exited with status ${r.exitCode}` : `killed by ${r.signal}`;
  }
  return { exitCode: r.exitCode, signal: r.signal, cause: r.cause, detail };
}
