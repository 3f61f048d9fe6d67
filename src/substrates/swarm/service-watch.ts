/**
 * Watching a job service to its end, from the runner that started it or from a fresh one after a
 * restart (re-attach). Everything needed is on the service (labels `ferry.log-path`,
 * `ferry.log-start`, `ferry.log-limit`, `ferry.timeout-ms`; creation time from the manager), so
 * `watch(ref)` works from a new process.
 *
 * The end: the task is polled (every `pollMs`) until it is in a final state. Its output is followed
 * through the service's logs into a JobLog (the container substrate's job-log.ts: the attempt log
 * gets only the bytes it lacks, within `logLimit`), and once the task ended the whole output is
 * read once more, as the container substrate does, so lines the follow stream had not delivered
 * yet are not lost and a re-attach never writes a line twice.
 *
 * The result: `complete` → success; `failed` → the container's exit status through the container
 * substrate's stepResultOf (OOM from the task container's `State.OOMKilled`, read on its node: the
 * manager's engine, or a node agent elsewhere; only when it cannot be read is exit 137 under a
 * memory limit without a stop marker taken as over the peak); `rejected` (never ran) → `exit-code` without a status; the service removed, the task
 * `orphaned` or `remove`, or its node gone from the swarm → `lost`.
 *
 * The deadline is measured from the service's creation, so a re-attach keeps it.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import type { StepResult } from '../substrate.ts';
import { LABEL_LOG_LIMIT, LABEL_LOG_PATH, LABEL_LOG_START, LABEL_TIMEOUT_MS, ROLE } from '../container/container-labels.ts';
import { stepResultOf } from '../container/container-result.ts';
import { JobLog } from '../container/job-log.ts';
import { followLogs, replayLogs } from '../container/job-watch.ts';
import type { JobLogBound } from '../container/job-log.ts';
import { parseEngineTime } from '../container/container-engine.ts';
import { FINAL_TASK_STATES, nodeOrNull, serviceInfo, tasksOf } from './swarm-engine.ts';
import type { SwarmEngine, SwarmTask } from './swarm-engine.ts';
import { stopServiceFor } from './service-stop.ts';
import { containerOomKilled } from './node-volumes.ts';
import { nodeById } from './placement.ts';

export async function watchService(engine: SwarmEngine, watches: Set<AbortController>, ref: string, onLine: (line: string) => void): Promise<StepResult> {
  const first = await serviceInfo(engine.docker, ref);
  if (!first) return lostOrStopped(engine, ref, 'no longer exists in the swarm');
  const labels = first.Spec.Labels ?? {};
  if (labels[ROLE] !== 'migration') {
    throw new FerryError('FERRY_CONFLICT', `service ${ref} is not a Ferry migration job (label ${ROLE}=${labels[ROLE] ?? 'absent'})`);
  }
  const logPath = labels[LABEL_LOG_PATH];
  if (!logPath) throw new FerryError('FERRY_CONFLICT', `service ${ref} has no ${LABEL_LOG_PATH} label; it was not started by this substrate`);
  const timeoutMs = labels[LABEL_TIMEOUT_MS] ? Number(labels[LABEL_TIMEOUT_MS]) : null;
  const logStart = Number(labels[LABEL_LOG_START] ?? '0');
  const labelledLimit = Number(labels[LABEL_LOG_LIMIT] ?? NaN);
  const bound = Number.isInteger(labelledLimit) && labelledLimit > 0 ? { limit: labelledLimit } : undefined;
  const memoryLimit = first.Spec.TaskTemplate?.Resources?.Limits?.MemoryBytes ?? null;

  const abort = new AbortController();
  watches.add(abort);
  const log = new JobLog(logPath, logStart, onLine, bound);
  let deadline: NodeJS.Timeout | undefined;
  let output: { done: Promise<void>; cancel: () => void } | undefined;
  try {
    if (timeoutMs !== null) {
      const left = parseEngineTime(first.CreatedAt) + timeoutMs - Date.now();
      deadline = setTimeout(() => void stopServiceFor(engine, ref, 'deadline').catch(() => undefined), Math.max(0, left));
    }
    output = follow(engine.docker, first.ID, log, abort.signal);
    let task: SwarmTask | undefined;
    for (;;) {
      if (abort.signal.aborted) throw closedError(ref);
      const now = await serviceInfo(engine.docker, ref);
      if (!now || now.ID !== first.ID) {
        log.close();
        return lostOrStopped(engine, ref, 'was removed while it ran');
      }
      [task] = await tasksOf(engine.docker, first.ID);
      const state = task?.Status?.State;
      if (state && FINAL_TASK_STATES.has(state)) break;
      if (task?.NodeID && (await nodeOrNull(engine.docker, task.NodeID)) === null) {
        log.close();
        return lost(ref, `ran on swarm node ${task.NodeID}, which left the swarm`);
      }
      await abortableSleep(engine.config.pollMs, abort.signal, ref);
    }
    // No wait for the follow stream to drain: the replay below reads the whole output anyway.
    output.cancel();
    const delivered = log.lines;
    log.abandon();
    let replayed = 0;
    await replay(engine.docker, first.ID, logPath, logStart, bound, abort.signal, (line) => {
      if (++replayed > delivered) onLine(line);
    });
    return await resultOf(engine, ref, task!, memoryLimit, timeoutMs);
  } finally {
    clearTimeout(deadline);
    output?.cancel();
    watches.delete(abort);
    log.abandon();
  }
}

async function resultOf(engine: SwarmEngine, ref: string, task: SwarmTask, memoryLimit: number | null, timeoutMs: number | null): Promise<StepResult> {
  const state = task.Status?.State ?? '';
  const why = task.Status?.Err ?? task.Status?.Message ?? '';
  if (state === 'orphaned' || state === 'remove') return lost(ref, `task ${task.ID} ended ${state} (${why})`);
  if (state === 'rejected') {
    return { exitCode: null, signal: null, cause: 'exit-code', detail: `the swarm node rejected the job's task, it never ran: ${why}` };
  }
  const exitCode = task.Status?.ContainerStatus?.ExitCode ?? (state === 'complete' ? 0 : null);
  if (exitCode === null) return lost(ref, `task ${task.ID} ended ${state} without an exit status (${why})`);
  const oom = exitCode === 0 ? false : await oomKilled(engine, task);
  return stepResultOf({ exitCode, oomKilled: oom === true, oomReported: oom !== null, memoryLimit, timeoutMs }, engine.stops.read(ref));
}

/**
 * The OOM flag of the task's container, read from the engine of its node (the manager's own, or a
 * node agent's `docker inspect` there). Docker sets it, also on cgroup v1; null when it cannot be
 * read (the container or its node gone): then exit 137 under a memory limit is taken as a memory kill.
 */
async function oomKilled(engine: SwarmEngine, task: SwarmTask): Promise<boolean | null> {
  const id = task.Status?.ContainerStatus?.ContainerID;
  if (!id || !task.NodeID) return null;
  try {
    if (task.NodeID === engine.managerNodeId()) return (await engine.docker.getContainer(id).inspect()).State.OOMKilled === true;
    return await containerOomKilled(engine, await nodeById(engine, task.NodeID), id);
  } catch {
    return null;
  }
}

/** A service that is gone: stopped by Ferry (its marker says why) or lost. */
function lostOrStopped(engine: SwarmEngine, ref: string, why: string): StepResult {
  const stop = engine.stops.read(ref);
  if (stop?.cause === 'deadline') return { exitCode: null, signal: null, cause: 'deadline', detail: `stopped: ran past its timeout (service ${ref} removed)` };
  if (stop?.cause === 'cancelled')
    return { exitCode: null, signal: null, cause: 'cancelled', detail: `stopped on request at ${stop.at} (service ${ref} removed)` };
  return lost(ref, why);
}

function lost(ref: string, why: string): StepResult {
  return { exitCode: null, signal: null, cause: 'lost', detail: `job service ${ref} ${why}; its result is unknown` };
}

function logsStream(docker: Docker, serviceId: string, follow: boolean): Promise<NodeJS.ReadableStream> {
  return new Promise<NodeJS.ReadableStream>((resolve, reject) => {
    // Dialled as a stream: dockerode buffers the whole answer of a non-following logs() call.
    docker.modem.dial(
      {
        path: `/services/${serviceId}/logs?`,
        method: 'GET',
        isStream: true,
        statusCodes: { 200: true, 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' },
        options: { follow, stdout: true, stderr: true },
      },
      (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
    );
  });
}

async function replay(
  docker: Docker,
  serviceId: string,
  logPath: string,
  logStart: number,
  bound: JobLogBound | undefined,
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  return replayLogs(
    () => logsStream(docker, serviceId, false),
    () => new JobLog(logPath, logStart, onLine, bound),
    signal,
    () => closedError(serviceId),
  );
}

function follow(docker: Docker, serviceId: string, log: JobLog, signal: AbortSignal): { done: Promise<void>; cancel: () => void } {
  return followLogs(() => logsStream(docker, serviceId, true), log, signal);
}

function closedError(ref: string): FerryError {
  return new FerryError(
    'FERRY_INTERNAL',
    `watch of ${ref} ended: the swarm substrate was closed; the job keeps running and the next runner re-attaches to it`,
    { ref },
  );
}

function abortableSleep(ms: number, signal: AbortSignal, ref: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(closedError(ref));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(closedError(ref));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
