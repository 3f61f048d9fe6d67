/**
 * Knowing that a started container has ended, as soon as the engine knows it.
 *
 * The trap: Podman's Docker-compatible wait (`POST /containers/{id}/wait`) polls the container
 * every 250 ms and answers only once Podman's cleanup process has run (state `exited`), which
 * comes 0.2 to over 1 s after the job's exit on this project's machines (Podman 4.3, 2 cores). The
 * job's exit status is known earlier: an inspect reads conmon's exit file and answers `stopped`
 * with the exit code as soon as the process is gone, and conmon writes that file only after it
 * has written the job's last output to the log. Podman's alternatives are no better: the events
 * stream carries `die` only after the cleanup process, a follow of the logs ends on its own 250 ms
 * poll, and an attach to a container that just ended re-initialises it (the exit code is lost).
 *
 * So the engine's wait is raced with a few inspects in the first seconds, which see a short job
 * end within milliseconds; after them only the wait decides (a long job pays at most the engine's
 * own delay, and a running job costs no requests). Docker's wait answers at once either way.
 *
 * A job killed by a signal is left to the wait: a forced removal kills the job and then removes
 * it, and only after Podman's cleanup can the watch tell "removed" (lost) from a kill of its own
 * (taken as a memory kill, container-result.ts). Cancel, deadline and memory kills pay the engine's
 * delay; they are not the path that has to be quick.
 */
import type Docker from 'dockerode';
import { inspectOrNull } from './container-engine.ts';
import { isNotFound } from './engine-errors.ts';

/** Pauses before each early inspect, in ms (about 1.3 s in all). */
const EARLY_LOOKS_MS: readonly number[] = [5, 10, 20, 40, 80, 160, 320, 640];

/** States of a container that ran and ended (Podman says `stopped` before its cleanup, `exited` after). */
const ENDED: ReadonlySet<string> = new Set(['exited', 'stopped', 'dead']);

/** Exit statuses from here on are deaths by a signal (128 + n). */
const KILLED = 128;

/**
 * Whether an inspect shows a started container that has ended, and not by a signal: its result
 * is then settled. One killed by a signal is left to the engine's wait (see above).
 */
export function endedOnItsOwn(info: Docker.ContainerInspectInfo): boolean {
  return ENDED.has(info.State.Status) && !info.State.Running && info.State.ExitCode < KILLED;
}

/**
 * Resolves once a started container has ended: true, or false when it is gone (removed). An abort
 * of `signal` ends the requests this made; the caller decides what the abort means.
 */
export async function untilEnded(container: Docker.Container, signal: AbortSignal): Promise<boolean> {
  const done = new AbortController();
  const onAbort = (): void => done.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const waited = container.wait({ abortSignal: done.signal }).then(
      () => true,
      (err: unknown) => (isNotFound(err) ? false : Promise.reject(err)),
    );
    return await Promise.race([waited, lookEarly(container, done.signal)]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    done.abort();
  }
}

/** Resolves once an inspect shows the container ended by itself; never otherwise (the wait decides). */
async function lookEarly(container: Docker.Container, signal: AbortSignal): Promise<true> {
  for (const pause of EARLY_LOOKS_MS) {
    await sleep(pause);
    if (signal.aborted) break;
    // A failed look (gone, engine busy) is left to the wait, which says what happened.
    const info = await inspectOrNull(container).catch(() => null);
    if (info && endedOnItsOwn(info)) return true;
  }
  return new Promise<never>(() => undefined);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
