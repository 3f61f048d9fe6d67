/**
 * How long a `watch` waits before looking at a job again when it cannot be told that something
 * happened (a job re-attached after a restart, or one whose exit nobody reports): soon after a
 * change, then doubling up to `idleMs` while nothing changes, so a thousand quiet re-attached jobs
 * cost about a thousand looks a second instead of ten thousand.
 */
export interface PollIntervals {
  /** Wait after a change (output appeared). */
  readonly pollMs: number;
  /** Longest wait while nothing changes. */
  readonly idleMs: number;
}

export function nextPollMs(previousMs: number, changed: boolean, intervals: PollIntervals): number {
  if (changed) return intervals.pollMs;
  return Math.min(Math.max(previousMs * 2, 1), intervals.idleMs);
}
