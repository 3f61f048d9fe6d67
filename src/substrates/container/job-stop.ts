/**
 * Stopping a job container (cancel, deadline). Why it was stopped is recorded first, as a stop
 * marker (stop-markers.ts), so a re-attached watch reports the right cause.
 */
import { FerryError } from '../../core/errors.ts';
import { ROLE } from './container-labels.ts';
import { inspectOrNull } from './container-engine.ts';
import type { ContainerEngine } from './container-engine.ts';
import { engineMessage, isNotFound, isNotModified } from './engine-errors.ts';
import type { StopCause } from './stop-markers.ts';

/** Cancel a running job; a job that already ended, or never existed, is left as it is. */
export async function cancelJob(engine: ContainerEngine, ref: string): Promise<void> {
  const info = await inspectOrNull(engine.docker.getContainer(ref));
  if (!info) return;
  // A job that already ended keeps its own result: there is nothing to cancel.
  if (!info.State.Running && !info.State.Paused && info.State.Status !== 'created') return;
  if ((info.Config.Labels ?? {})[ROLE] !== 'migration') {
    throw new FerryError('FERRY_CONFLICT', `refusing to stop container ${ref}: it is not a Ferry migration job`);
  }
  await stopFor(engine, ref, 'cancelled');
}

export async function stopFor(engine: ContainerEngine, ref: string, cause: StopCause): Promise<void> {
  // The intent is recorded before the engine acts, so a restart in between still knows why.
  engine.stops.write(ref, cause, new Date());
  try {
    await engine.docker.getContainer(ref).stop({ t: engine.config.stopGraceSeconds });
  } catch (err) {
    if (isNotFound(err) || isNotModified(err)) return;
    if (cause === 'deadline') return; // fired from a timer; the watch reports what happens next
    throw new FerryError('FERRY_INTERNAL', `could not stop job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
  }
}
