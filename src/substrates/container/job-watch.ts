/**
 * Watching a job container to its end, from the runner that started it or from a fresh one after a
 * restart (re-attach): everything needed is on the container (labels `ferry.log-path`,
 * `ferry.log-start`, `ferry.log-limit`, `ferry.timeout-ms`; start time from the engine). The
 * output goes through a JobLog (job-log.ts), which appends to the attempt log only what it lacks;
 * the deadline is kept by the watch, measured from the engine's start time.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import type { StepResult } from '../substrate.ts';
import { LABEL_LOG_LIMIT, LABEL_LOG_PATH, LABEL_LOG_START, LABEL_TIMEOUT_MS, ROLE } from './container-labels.ts';
import type { Labels } from './container-labels.ts';
import { inspectOrNull, parseEngineTime } from './container-engine.ts';
import type { ContainerEngine } from './container-engine.ts';
import { endedOnItsOwn, untilEnded } from './container-exit.ts';
import { stepResultOf } from './container-result.ts';
import { isNotFound } from './engine-errors.ts';
import { FrameDemuxer, JobLog } from './job-log.ts';
import type { JobLogBound } from './job-log.ts';
import { stopFor } from './job-stop.ts';

/** Grace for the log stream to drain after the container was removed while it ran. */
const LOG_DRAIN_MS = 2000;

/**
 * Watch job `ref` until it ends. The watch's AbortController is in `watches` while it runs; an
 * abort (Substrate.close) ends the watch with a "substrate closed" error and leaves the job running.
 */
export async function watchJob(engine: ContainerEngine, watches: Set<AbortController>, ref: string, onLine: (line: string) => void): Promise<StepResult> {
  const container = engine.docker.getContainer(ref);
  const first = await inspectOrNull(container);
  if (!first) return lost(ref, 'no longer exists on the engine');
  const labels: Labels = first.Config.Labels ?? {};
  if (labels[ROLE] !== 'migration') {
    throw new FerryError('FERRY_CONFLICT', `container ${ref} is not a Ferry migration job (label ${ROLE}=${labels[ROLE] ?? 'absent'})`);
  }
  if (first.State.Status === 'created' || first.State.Status === 'configured') {
    return lost(ref, 'was created but never started (the runner stopped in between); Ferry does not start it late');
  }
  const logPath = labels[LABEL_LOG_PATH];
  if (!logPath) throw new FerryError('FERRY_CONFLICT', `container ${ref} has no ${LABEL_LOG_PATH} label; it was not started by this substrate`);
  const timeoutMs = labels[LABEL_TIMEOUT_MS] ? Number(labels[LABEL_TIMEOUT_MS]) : null;
  const logStart = Number(labels[LABEL_LOG_START] ?? '0');
  // The limit the step started with, whatever this runner's logLimit is: a replay must compute
  // the same log as the first watch did (job-log.ts). A job started before the bound existed has
  // no label and is completed as it was begun, unbounded.
  const labelledLimit = Number(labels[LABEL_LOG_LIMIT] ?? NaN);
  const bound = Number.isInteger(labelledLimit) && labelledLimit > 0 ? { limit: labelledLimit } : undefined;

  const abort = new AbortController();
  watches.add(abort);
  const log = new JobLog(logPath, logStart, onLine, bound);
  let deadline: NodeJS.Timeout | undefined;
  let output: { done: Promise<void>; cancel: () => void } | undefined;
  try {
    // A short job has often ended by the time it is watched (a start takes Podman 70–140 ms):
    // then the replay below is the whole watch, with no follow and no wait.
    if (!endedOnItsOwn(first)) {
      if (first.State.Running && timeoutMs !== null) {
        // Measured from the engine's start time, so a re-attach after a restart keeps the same deadline.
        const left = parseEngineTime(first.State.StartedAt) + timeoutMs - Date.now();
        deadline = setTimeout(() => void stopFor(engine, ref, 'deadline').catch(() => undefined), Math.max(0, left));
      }
      output = follow(container, log, abort.signal);
      if (!(await abortable(untilEnded(container, abort.signal), abort.signal, ref))) {
        // Its output is gone with it: no replay will ever complete the log, so end it with what came.
        await Promise.race([output.done, sleep(LOG_DRAIN_MS)]);
        output.cancel();
        log.close();
        return lost(ref, 'was removed while it ran');
      }
      // Not waited for: Podman ends a follow stream on its own 250 ms poll, and the replay below
      // delivers whatever it did not.
      output.cancel();
    }
    // Podman's follow stream can end before it delivered a quickly exiting job's last lines (seen
    // under load: a checkpoint printed just before exit was missing). So the finished job's whole
    // output is read once more: the file gets only the bytes it lacks, and onLine only the lines
    // the follow stream did not deliver (the same frames in the same order, so a prefix of them).
    const delivered = log.lines;
    log.abandon();
    let replayed = 0;
    await replay(engine.docker, container, logPath, logStart, bound, abort.signal, (line) => {
      if (++replayed > delivered) onLine(line);
    });
    const final = await inspectOrNull(container);
    if (!final) return lost(ref, 'was removed right after it ended');
    if (final.State.Running) {
      throw new FerryError(
        'FERRY_INTERNAL',
        `container ${ref} still running after the engine's wait returned; the engine answered inconsistently, watch it again`,
        { ref },
      );
    }
    return stepResultOf(
      {
        exitCode: final.State.ExitCode,
        oomKilled: final.State.OOMKilled,
        memoryLimit: final.HostConfig.Memory ?? null,
        timeoutMs,
      },
      engine.stops.read(ref),
    );
  } finally {
    clearTimeout(deadline);
    output?.cancel();
    watches.delete(abort);
    // Abandon, not close: a watch that ends early (runner stopping, engine error) must not write a
    // half line or the end section; the next watch's replay writes them exactly once.
    log.abandon();
  }
}

/**
 * The whole output of a finished container, through a fresh JobLog (which appends only what the
 * file lacks). Streamed, not buffered: a job may have printed gigabytes.
 */
async function replay(
  docker: Docker,
  container: Docker.Container,
  logPath: string,
  logStart: number,
  bound: JobLogBound | undefined,
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  const open = () =>
    new Promise<NodeJS.ReadableStream>((resolve, reject) => {
      // dockerode's logs() buffers the whole answer unless it follows; dial it as a stream instead.
      docker.modem.dial(
        {
          path: `/containers/${container.id}/logs?`,
          method: 'GET',
          isStream: true,
          statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
          options: { follow: false, stdout: true, stderr: true },
        },
        (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
      );
    });
  return replayLogs(
    open,
    () => new JobLog(logPath, logStart, onLine, bound),
    signal,
    () => closedError(container.id),
  );
}

/**
 * Read a finished job's whole multiplexed output (`open`; a 404 means there is none left) into a
 * fresh JobLog. Only a replay read to its end may write the log's end section; otherwise the next
 * watch does. An abort (close()) ends it at once with `closed()`: a long output takes an engine a
 * while to serve (Podman 4.3: about 3 MB/s). Shared with the swarm substrate.
 */
export async function replayLogs(open: () => Promise<NodeJS.ReadableStream>, makeLog: () => JobLog, signal: AbortSignal, closed: () => Error): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await open();
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  const log = makeLog();
  let complete = false;
  const onAbort = (): void => (stream as { destroy?: () => void }).destroy?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const demux = new FrameDemuxer((s, data) => log.push(s, data));
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      if (signal.aborted) break;
      demux.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    }
    if (signal.aborted) throw closed();
    complete = true;
  } catch (err) {
    if (signal.aborted) throw closed();
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (complete) log.close();
    else log.abandon();
  }
}

function follow(container: Docker.Container, log: JobLog, signal: AbortSignal): { done: Promise<void>; cancel: () => void } {
  return followLogs(() => container.logs({ follow: true, stdout: true, stderr: true }), log, signal);
}

/**
 * Follow a running job's multiplexed output (`open`; a 404 means there is none) into `log` until
 * the stream ends, `cancel()` or an abort of `signal`. A broken stream does not decide the step's
 * result: the engine's status does. Shared with the swarm substrate.
 */
export function followLogs(open: () => Promise<NodeJS.ReadableStream>, log: JobLog, signal: AbortSignal): { done: Promise<void>; cancel: () => void } {
  let stream: NodeJS.ReadableStream | null = null;
  let cancelled = false;
  const cancel = (): void => {
    cancelled = true;
    (stream as { destroy?: () => void } | null)?.destroy?.();
  };
  signal.addEventListener('abort', cancel, { once: true });
  const done = (async (): Promise<void> => {
    try {
      stream = await open();
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (cancelled) return cancel();
    const demux = new FrameDemuxer((s, data) => log.push(s, data));
    await new Promise<void>((resolve) => {
      stream?.on('data', (chunk: Buffer) => demux.push(chunk));
      stream?.on('end', resolve);
      stream?.on('close', resolve);
      stream?.on('error', () => resolve());
    });
  })();
  return { done: done.catch(() => undefined), cancel };
}

function lost(ref: string, why: string): StepResult {
  return { exitCode: null, signal: null, cause: 'lost', detail: `job container ${ref} ${why}; its result is unknown` };
}

/** What a pending watch rejects with on close() (Substrate.close): FERRY_INTERNAL, "substrate closed". */
function closedError(ref: string): FerryError {
  return new FerryError(
    'FERRY_INTERNAL',
    `watch of ${ref} ended: the container substrate was closed; the job keeps running and the next runner re-attaches to it`,
    { ref },
  );
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal, ref: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(closedError(ref));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
