/**
 * Late outcomes: the jobs of this node's attempts that another node took over while this node was
 * lost or cut off. Their migrations are held `lost` already and stay so; this node watches each
 * job to its end and records what it really did as a `late-outcome` event, once. While such a job
 * lives its tenant is blocked here: no new attempt of that tenant starts beside it.
 */
import { FerryError, coerceError } from '../core/errors.ts';
import { stepLabel } from '../core/steps.ts';
import type { AttemptRecord } from '../store/records.ts';
import type { StepResult } from '../substrates/substrate.ts';
import type { RunnerContext } from './runner-context.ts';

export class LateOutcomes {
  private readonly ctx: RunnerContext;
  private readonly blocked: Set<string>;
  private readonly watching = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(ctx: RunnerContext, blocked: Set<string>) {
    this.ctx = ctx;
    this.blocked = blocked;
  }

  /** Watch a taken-over attempt's job and record its outcome (once; a second call is a no-op). */
  async watch(a: AttemptRecord): Promise<void> {
    const key = `${a.migrationId}#${a.number}`;
    if (this.watching.has(key)) return;
    const m = await this.ctx.store.getMigration(a.migrationId);
    if (!m) return;
    this.stopped = false;
    this.blocked.add(m.tenant);
    const done = this.follow(a)
      .catch((err: unknown) => this.ctx.log('warn', `late outcome of ${a.migrationId}: ${coerceError(err).message}`))
      .finally(() => {
        this.watching.delete(key);
        if (![...this.watching.keys()].some((k) => k.startsWith(`${a.migrationId}#`))) this.blocked.delete(m.tenant);
        this.ctx.poke();
      });
    this.watching.set(key, done);
  }

  private async follow(a: AttemptRecord): Promise<void> {
    const { ctx } = this;
    const result: StepResult = a.jobRef
      ? await ctx.substrate.watch(a.jobRef, () => undefined)
      : { exitCode: null, signal: null, cause: 'lost', detail: 'no job had started' };
    if (this.stopped) return;
    const step = a.step ?? a.fromStep;
    const outcome = { step, exitCode: result.exitCode, signal: result.signal, cause: result.cause, detail: `step ${stepLabel(step)}: ${result.detail}` };
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        const recorded = await ctx.store.recordLateOutcome(ctx.lease(), a.migrationId, a.number, outcome, ctx.now());
        if (recorded)
          ctx.log('info', `migration ${a.migrationId}: the job of its taken-over attempt ${a.number} ended (${result.detail}); recorded as a late outcome`);
        return;
      } catch (err) {
        // Fenced: this node is joining again; the write lands with its next lease.
        if (!(err instanceof FerryError && err.code === 'FERRY_FENCED'))
          ctx.log('warn', `cannot record the late outcome of ${a.migrationId} yet: ${coerceError(err).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stop recording (a stopped runner); the next start watches again what is still unrecorded. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watching.clear();
    this.blocked.clear();
  }
}
