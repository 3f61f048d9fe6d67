/**
 * Following one step to its end: its log tailed for `::ferry::` lines, its end taken from the
 * supervisor's `result`, and the cases where nobody recorded one (`lost`). A supervisor this
 * process started is followed through its exit event; a re-attached one is polled, 100 ms after
 * its output grew, backing off to 1 s while nothing changes (docs/decisions.md, "Watching").
 */
import type { StepResult } from '../substrate.ts';
import { removeCgroups } from './cgroups.ts';
import { LogTail } from './log-tail.ts';
import { nextPollMs } from './poll-interval.ts';
import { isAlive, killGroup } from './proc.ts';
import { readPidFile, readResult, sameBoot, type JobFile } from './step-folder.ts';
import { lost, stepResultOf } from './step-result.ts';
import type { SupervisorHandle, WakeUp } from './supervisor-handle.ts';

/** Log polling of a job Ferry spawned itself (its exit is an event): while output grows, and when quiet. */
const OUTPUT_POLL_MS = 100;
/** Longest wait between two looks at a job while nothing changes, whether or not its exit is an event. */
const IDLE_POLL_MS = 1000;
/** How long a step folder may lack its pid file before its supervisor is taken as never started. */
const PID_GRACE_MS = 5000;

export interface FollowedStep {
  readonly ref: string;
  readonly job: JobFile;
  /** The handle of its supervisor when this process started it. */
  readonly own: SupervisorHandle | undefined;
  /** Woken by the supervisor's exit and by close(). */
  readonly wakeUp: WakeUp;
  /** The kernel's boot id now. */
  readonly bootId: string | null;
  /** First wait of a re-attached job after its output grew (`pollMs`). */
  readonly pollMs: number;
  /** Throws once the substrate is closed: the watch then rejects and the next start re-attaches. */
  readonly assertOpen: () => void;
}

export async function followStep(step: FollowedStep, onLine: (line: string) => void): Promise<StepResult> {
  const { ref, job, own, wakeUp } = step;
  const tail = new LogTail(job.logPath, job.logOffset, onLine);
  let interval = 5;
  let pidMissingSince: number | null = null;
  for (;;) {
    step.assertOpen();
    const grew = await tail.read();
    step.assertOpen();
    // A supervisor this process started is watched through its exit event: while it lives there
    // is no result to look for, and the log is read often only while it grows, so a thousand
    // quiet jobs cost a stat each per second instead of ten.
    if (own?.state === 'running') {
      interval = grew ? OUTPUT_POLL_MS : Math.min(interval * 2, IDLE_POLL_MS);
      await wakeUp.wait(interval);
      continue;
    }
    const result = await readResult(ref);
    if (result) {
      await tail.read(true);
      await removeCgroups(job.cgroupDirs);
      return stepResultOf(result, job);
    }
    if (!sameBoot(job, step.bootId)) {
      // Its pids now name other processes (or nothing): never signal them.
      await tail.read(true);
      await removeCgroups(job.cgroupDirs);
      return lost('the machine restarted while the job ran (its boot id changed); it did not record how it ended');
    }
    const pid = await readPidFile(ref);
    let changed = grew;
    if (pid === null) {
      pidMissingSince ??= Date.now();
      if (Date.now() - pidMissingSince > PID_GRACE_MS) {
        await removeCgroups(job.cgroupDirs);
        return lost('its supervisor never started the job');
      }
    } else if (!isAlive(pid.supervisor, pid.supervisorStart)) {
      // The supervisor may have written the result just before it exited.
      const late = await readResult(ref);
      if (late) continue;
      killGroup(pid.job, pid.jobStart);
      await tail.read(true);
      await removeCgroups(job.cgroupDirs);
      return lost('its supervisor died without recording how the job ended; the job was stopped');
    } else if (pidMissingSince !== null) {
      pidMissingSince = null;
      changed = true;
    }
    await wakeUp.wait(interval);
    interval = nextPollMs(interval, changed, { pollMs: step.pollMs, idleMs: IDLE_POLL_MS });
  }
}
