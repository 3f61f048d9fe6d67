/**
 * Stopping a job service (cancel, deadline). Why it was stopped is recorded first, as a stop marker
 * (the container substrate's stop-markers.ts, under `<dataDir>/container-stops/`), so a re-attached
 * watch reports the right cause.
 *
 * How: the task's container is stopped through the engine that runs it when that is the manager's
 * own engine (SIGTERM, then SIGKILL after `stopGraceSeconds`); the task then ends `failed` with the
 * job's exit status and its logs stay readable. A task on another node, or one not started yet, is
 * stopped by removing its service (the swarm has no "stop this task"): its output is then gone from
 * the swarm, and what the attempt log already holds is what remains.
 */
import { FerryError } from '../../core/errors.ts';
import { ROLE } from '../container/container-labels.ts';
import { engineMessage, isNotFound, isNotModified } from '../container/engine-errors.ts';
import type { StopCause } from '../container/stop-markers.ts';
import { FINAL_TASK_STATES, serviceInfo, tasksOf } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';

export async function cancelService(engine: SwarmEngine, ref: string): Promise<void> {
  const info = await serviceInfo(engine.docker, ref);
  if (!info) return;
  if (info.Spec.Labels?.[ROLE] !== 'migration') {
    throw new FerryError('FERRY_CONFLICT', `refusing to stop service ${ref}: it is not a Ferry migration job`);
  }
  const [task] = await tasksOf(engine.docker, info.ID);
  // A job that already ended keeps its own result: there is nothing to cancel.
  if (task && FINAL_TASK_STATES.has(task.Status?.State ?? '')) return;
  await stopServiceFor(engine, ref, 'cancelled');
}

export async function stopServiceFor(engine: SwarmEngine, ref: string, cause: StopCause): Promise<void> {
  engine.stops.write(ref, cause, new Date());
  try {
    const info = await serviceInfo(engine.docker, ref);
    if (!info) return;
    const [task] = await tasksOf(engine.docker, info.ID);
    const containerId = task?.Status?.ContainerStatus?.ContainerID;
    const onManager = task?.NodeID === engine.managerNodeId();
    if (containerId && onManager) {
      try {
        await engine.docker.getContainer(containerId).stop({ t: engine.config.stopGraceSeconds });
        return;
      } catch (err) {
        if (isNotModified(err)) return;
        if (!isNotFound(err)) throw err;
      }
    }
    await engine.docker.getService(info.ID).remove();
  } catch (err) {
    if (isNotFound(err) || isNotModified(err)) return;
    if (cause === 'deadline') return; // fired from a timer; the watch reports what happens next
    throw new FerryError('FERRY_INTERNAL', `could not stop job service ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
  }
}
