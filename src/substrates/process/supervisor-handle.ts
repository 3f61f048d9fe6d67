/**
 * How the process substrate learns that a supervisor it started has ended, without polling: a
 * handle per supervisor, settled by the spawner's exit report or Node's exit event, and a wake-up
 * that a waiting `watch` loop reuses for every wait.
 */

/**
 * `running`: its exit will be reported. `exited`: it was reported. `untracked`: nobody will report
 * it any more (the spawner died): whoever waits on it must poll its files instead.
 */
export type SupervisorState = 'running' | 'exited' | 'untracked';

export class SupervisorHandle {
  private current: SupervisorState = 'running';
  private readonly listeners = new Set<() => void>();

  get state(): SupervisorState {
    return this.current;
  }

  /** Calls `listener` on the change out of `running`; returns how to unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  settle(state: Exclude<SupervisorState, 'running'>): void {
    if (this.current !== 'running') return;
    this.current = state;
    for (const listener of [...this.listeners]) listener();
    this.listeners.clear();
  }
}

/**
 * A wait that ends after `ms` or at the next `wake()`, whichever comes first. One per waiting
 * loop, subscribed once to what can wake it: racing a long-lived promise against a fresh sleep on
 * every poll would add a reaction to that promise per poll, kept until it settles (a leak for a
 * job that runs for days). A wake while nobody waits makes the next wait return at once.
 */
export class WakeUp {
  private resolveWait: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private woken = false;

  readonly wake = (): void => {
    if (this.resolveWait) this.finish();
    else this.woken = true;
  };

  wait(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.resolveWait = resolve;
      this.timer = setTimeout(() => this.finish(), ms);
    });
  }

  private finish(): void {
    if (this.timer) clearTimeout(this.timer);
    const resolve = this.resolveWait;
    this.timer = null;
    this.resolveWait = null;
    resolve?.();
  }
}
