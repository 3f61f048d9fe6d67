/**
 * Supervising a running attempt: its steps in order through the substrate, each step's output,
 * and the attempt's outcome in the store. A fresh attempt (just launched) creates what its start
 * recorded; a re-attached one (running while Ferry was away) picks up at its recorded step and
 * never starts that step again.
 */
import { FerryError, coerceError } from '../core/errors.ts';
import { WIPE_STEP, stepLabel, stepName } from '../core/steps.ts';
import type { FailureCause, Tenant } from '../core/types.ts';
import type { ArtifactRecord, AttemptRecord, MigrationRecord, NodeLease } from '../store/records.ts';
import type { StepResult, StepSpec } from '../substrates/substrate.ts';
import { appendLogLine, noteFullDisk } from './disk.ts';
import { SYSTEM, type RunnerContext } from './runner-context.ts';
import { stepSpec } from './step-spec.ts';
import { StepOutputRecorder } from './step-output.ts';
import { tenantOf } from './tenant-view.ts';

export interface ActiveAttempt {
  readonly done: Promise<void>;
  cancel: { actor: string; reason: string } | null;
  /** The job of the current step, and whether it was started and not yet seen to end. */
  jobRef: string | null;
  step: number | null;
  jobStarted: boolean;
  /** The node's lease when this supervision began: its writes carry it, so a superseded supervision is refused. */
  readonly lease: NodeLease;
}

/** What a fresh start hands to the attempt's supervision: the artifacts the start recorded. */
export interface FreshStart {
  readonly artifacts: readonly ArtifactRecord[];
  /** The attempt's row as the start inserted it. */
  readonly attempt: AttemptRecord;
  readonly tenant: Tenant;
}

export class AttemptSupervisor {
  private readonly ctx: RunnerContext;
  private readonly active = new Map<string, ActiveAttempt>();
  /** Steps being prepared and started: a stop waits for them, so none is left half-started. */
  private readonly starting = new Set<Promise<unknown>>();
  /** Bumped by stop(): a supervision begun before it acts no more (a rejoin may supervise the same attempt anew). */
  private generation = 0;

  constructor(ctx: RunnerContext) {
    this.ctx = ctx;
  }

  /** The attempt of migration `id` this runner supervises, if any. */
  get(id: string): ActiveAttempt | undefined {
    return this.active.get(id);
  }

  has(id: string): boolean {
    return this.active.has(id);
  }

  get size(): number {
    return this.active.size;
  }

  /** Wait for every attempt supervised now to end. */
  async ended(): Promise<void> {
    await Promise.all([...this.active.values()].map((a) => a.done));
  }

  /** Stop supervising. Jobs keep running; the next start re-attaches. */
  async stop(): Promise<void> {
    // A step being prepared (snapshot, restore) or started is seen through, so the next start
    // finds its job; then supervision ends (the substrate's close() ends pending watches).
    this.generation++;
    await Promise.allSettled([...this.starting]);
    this.active.clear();
  }

  /** Supervise the running attempt of `m`: a fresh start (with its recorded artifacts), or a re-attach. */
  supervise(m: MigrationRecord, fresh: FreshStart | null): void {
    const { ctx } = this;
    if (this.active.has(m.id)) return;
    const entry: ActiveAttempt = { done: Promise.resolve(), cancel: null, jobRef: null, step: null, jobStarted: false, lease: ctx.lease() };
    const generation = this.generation;
    const halted = () => ctx.isStopped() || generation !== this.generation;
    ctx.metrics.running.inc();
    const done = this.runAttempt(m, entry, fresh, halted)
      .catch(async (err: unknown) => {
        // A stopped runner stops supervising; the next start re-attaches and records the outcome.
        if (halted()) return;
        // Another node took this node's attempts over: it rejoins, and watches the job for its late outcome.
        if (err instanceof FerryError && err.code === 'FERRY_FENCED') return ctx.onFenced();
        // A failure of Ferry's own effects (disk, substrate) fails the attempt: held, never retried.
        const e = coerceError(err);
        ctx.log('error', `attempt of ${m.id} failed inside Ferry: ${e.message}`);
        // Nothing may run on a held migration: stop the job Ferry lost track of, and wait for it.
        if (entry.jobStarted && entry.jobRef) {
          const ref = entry.jobRef;
          await ctx.substrate.stop(ref).catch(() => undefined);
          await Promise.race([ctx.substrate.watch(ref, () => undefined), new Promise((r) => setTimeout(r, 30_000))]).catch(() => undefined);
        }
        await this.untilStored(`hold of ${m.id}`, halted, async () => {
          const current = await ctx.store.getMigration(m.id);
          if (current?.state !== 'running') return;
          const step = entry.step ?? (await ctx.store.getAttempt(m.id, current.attempts))?.fromStep ?? 0;
          const lost: StepResult = { exitCode: null, signal: null, cause: 'lost', detail: `Ferry could not run the step: ${e.message}` };
          // Already inside untilStored: this write is retried as a whole, with the re-read above.
          await this.recordOutcome(current, current.attempts, step, lost, entry, { untilStored: false, halted });
        }).catch(() => undefined);
      })
      .finally(() => {
        if (this.active.get(m.id) === entry) this.active.delete(m.id);
        ctx.metrics.running.dec();
        ctx.poke();
      });
    (entry as { done: Promise<void> }).done = done;
    this.active.set(m.id, entry);
  }

  private async runAttempt(m: MigrationRecord, entry: ActiveAttempt, fresh: FreshStart | null, halted: () => boolean): Promise<void> {
    const { ctx } = this;
    const attempt = fresh?.attempt ?? (await ctx.store.getAttempt(m.id, m.attempts));
    if (!attempt) throw new FerryError('FERRY_INTERNAL', `migration ${m.id} is running without attempt ${m.attempts}`);
    const tenant = fresh?.tenant ?? (await tenantOf(ctx.store, m));
    const steps = m.request.steps;
    const plan: number[] = [];
    for (let i = attempt.fromStep; i < steps.length; i++) plan.push(i);
    const outcome = (stepIndex: number, result: StepResult) => this.recordOutcome(m, attempt.number, stepIndex, result, entry, { untilStored: true, halted });

    let position = 0;
    if (!fresh) {
      if (attempt.step === null || attempt.jobRef === null) {
        return outcome(attempt.fromStep, {
          exitCode: null,
          signal: null,
          cause: 'lost',
          detail: 'lost: Ferry stopped while preparing the attempt, before its first step started',
        });
      }
      position = Math.max(0, plan.indexOf(attempt.step));
    }

    for (; position < plan.length; position++) {
      const stepIndex = plan[position] as number;
      const spec = stepSpec(m, {
        tenant,
        attempt: attempt.number,
        stepIndex,
        fromStep: attempt.fromStep,
        logRef: attempt.logRef,
        scratchRef: ctx.substrate.scratchRef(m.id),
      });
      const ref = ctx.substrate.jobRef(spec);
      entry.jobRef = ref;
      entry.step = stepIndex;
      const reattached = !fresh && stepIndex === attempt.step;
      if (!reattached) {
        if (entry.cancel) return outcome(stepIndex, cancelledResult());
        // A stopped runner starts no further step; the next start re-attaches after the last one.
        // Nor does a node unsure of its lease: it waits until it is sure, or is taken over.
        if (!(await this.untilLeased(halted))) return;
        if (entry.cancel) return outcome(stepIndex, cancelledResult());
        const first = fresh !== null && position === 0;
        const phase = this.startStep(m, tenant, attempt, spec, ref, first ? fresh : null, entry, halted);
        this.starting.add(phase);
        let started: boolean;
        try {
          started = await phase;
        } finally {
          this.starting.delete(phase);
        }
        // Taken over (or stopped) while preparing: the job was not started; the attempt's node
        // finds no job when it picks up, and holds the attempt `lost` (or the takeover did).
        if (!started) return;
        entry.jobStarted = true;
        const queued = ctx.queuedAt.get(m.id);
        if (queued !== undefined) {
          ctx.metrics.queueToStart.observe((performance.now() - queued) / 1000);
          ctx.queuedAt.delete(m.id);
        }
        if (entry.cancel) await ctx.substrate.stop(ref);
      } else {
        entry.jobStarted = true;
      }
      const output = new StepOutputRecorder(ctx.store, m.id, stepIndex, ctx.now, (msg) => ctx.log('warn', msg));
      // A superseded supervision (taken over, rejoined) writes no more checkpoints or progress.
      const result = await noteFullDisk(await ctx.substrate.watch(ref, (line) => (halted() ? undefined : output.line(line))), attempt.logRef);
      if (halted()) return;
      await this.untilStored(`checkpoint of ${m.id}`, halted, () => output.flush());
      entry.jobStarted = false;
      if (result.cause !== null) return outcome(stepIndex, entry.cancel ? cancelledResult(result) : result);
      if (entry.cancel && position < plan.length - 1) return outcome(stepIndex, cancelledResult(result));
    }
    await this.untilStored(`success of ${m.id}`, halted, () =>
      ctx.store.finishAttempt({
        id: m.id,
        number: attempt.number,
        attempt: { exitCode: 0, cause: null, detail: 'all steps succeeded' },
        patch: { next: null },
        event: { actor: SYSTEM, kind: 'succeed', reason: `attempt ${attempt.number}: all steps succeeded` },
        now: ctx.now(),
        lease: entry.lease,
      }),
    );
    ctx.metrics.transitions.inc({ to: 'succeeded' });
  }

  /**
   * Start one step's job. The first step of a fresh attempt first creates what the start recorded
   * (log, scratch, snapshot, restore); a later step records its job (intent) before starting it.
   * Either way the created marks go in one transaction after the job runs.
   */
  private async startStep(
    m: MigrationRecord,
    tenant: Tenant,
    attempt: AttemptRecord,
    spec: StepSpec,
    ref: string,
    fresh: FreshStart | null,
    entry: ActiveAttempt,
    halted: () => boolean,
  ): Promise<boolean> {
    const { ctx } = this;
    const created: number[] = [];
    let snapshotPatch: { id: string; patch: { snapshot: { ref: string; at: string } } } | undefined;
    if (fresh) {
      const byKind = new Map(fresh.artifacts.map((a) => [a.kind, a]));
      await appendLogLine(
        attempt.logRef,
        `── ferry: migration ${m.id}, attempt ${attempt.number}, tenant ${m.tenant}, limits ${ctx.substrate.limits().enforced ? 'enforced' : 'NOT enforced'} ──`,
      );
      const scratch = byKind.get('scratch');
      if (scratch && scratch.state !== 'created') await ctx.substrate.createScratch(scratch.ref, { migrationId: m.id, issue: m.issue, tenant });
      const snapshot = byKind.get('snapshot');
      if (snapshot) {
        await ctx.substrate.snapshot(tenant, snapshot.ref, { migrationId: m.id, issue: m.issue });
        snapshotPatch = { id: m.id, patch: { snapshot: { ref: snapshot.ref, at: ctx.now().toISOString() } } };
        await appendLogLine(attempt.logRef, `── ferry: snapshot of the tenant data taken (${snapshot.ref}) ──`);
      }
      if (m.next?.restore === 'snapshot' && m.snapshot) {
        await appendLogLine(attempt.logRef, `── ferry: restoring the tenant data from the snapshot taken at ${m.snapshot.at} ──`);
        await ctx.substrate.restore(tenant, m.snapshot.ref);
      }
      for (const a of fresh.artifacts) if (a.state === 'intended') created.push(a.id);
    } else {
      const job = await ctx.store.beginStep({
        migrationId: m.id,
        issue: m.issue,
        number: attempt.number,
        step: spec.stepIndex,
        ref,
        now: ctx.now(),
        lease: entry.lease,
      });
      created.push(job.id);
    }
    const steps = m.request.steps.length;
    const which = stepLabel(spec.stepIndex) + (spec.stepIndex === WIPE_STEP ? '' : `/${steps}`);
    await appendLogLine(attempt.logRef, `── ferry: attempt ${attempt.number}, step ${which} ${spec.stepName} ──`);
    // A snapshot or restore may take minutes: the lease is checked again right before the job starts.
    if (!(await this.untilLeased(halted))) return false;
    await ctx.substrate.start(spec, ref);
    await ctx.store.markCreated(created, ctx.now(), snapshotPatch);
    return true;
  }

  /**
   * Record how the attempt ended at `stepIndex`: cancelled (when a cancel asked for it), else held
   * with the step's cause. With `untilStored`, the store write is retried until it is taken.
   */
  private async recordOutcome(
    m: MigrationRecord,
    number: number,
    stepIndex: number,
    result: StepResult,
    entry: ActiveAttempt,
    opts: { untilStored: boolean; halted: () => boolean },
  ): Promise<void> {
    const { ctx } = this;
    const cancelled = result.cause === 'cancelled' && entry.cancel !== null;
    const where = `step ${stepLabel(stepIndex)} (${stepName(m.request, stepIndex)})`;
    const write = () =>
      ctx.store.finishAttempt({
        id: m.id,
        number,
        attempt: { exitCode: result.exitCode, signal: result.signal, cause: result.cause, detail: `${where}: ${result.detail}` },
        patch: cancelled
          ? { next: null }
          : { failedStep: stepIndex, heldCause: result.cause as FailureCause, heldDetail: `${where} ${result.detail}`, next: null },
        event: cancelled
          ? { actor: entry.cancel?.actor ?? SYSTEM, kind: 'cancel', reason: entry.cancel?.reason ?? 'cancelled' }
          : {
              actor: SYSTEM,
              kind: 'fail',
              reason: `${where} ${result.detail}`,
              detail: { cause: result.cause, exitCode: result.exitCode, signal: result.signal },
            },
        now: ctx.now(),
        lease: entry.lease,
      });
    await (opts.untilStored ? this.untilStored(`outcome of ${m.id}`, opts.halted, write) : write());
    ctx.metrics.transitions.inc({ to: cancelled ? 'cancelled' : 'held' });
  }

  /** Wait until this node may start a step (its lease is surely its own); false when supervision halted meanwhile. */
  private async untilLeased(halted: () => boolean): Promise<boolean> {
    for (let warned = false; !this.ctx.canStart(); warned = true) {
      if (halted()) return false;
      if (!warned) this.ctx.log('warn', `node ${this.ctx.nodeName} is not sure of its lease: the next step waits until it is`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return !halted();
  }

  /**
   * Retry a store write that records what already happened (an outcome, a checkpoint) until the
   * store takes it: a full disk must not leave a migration `running` with no one watching it. It
   * never retries a job. A typed error is not retried (a conflict: the state moved on); a stop
   * gives up, and the next start re-attaches and records the outcome from the job's result.
   */
  private async untilStored<T>(what: string, halted: () => boolean, write: () => Promise<T>): Promise<T> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 5000)) {
      try {
        return await write();
      } catch (err) {
        if (halted() || err instanceof FerryError) throw err;
        this.ctx.log('warn', `cannot record the ${what} yet (retrying in ${delay} ms): ${coerceError(err).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

function cancelledResult(result?: StepResult): StepResult {
  return { exitCode: result?.exitCode ?? null, signal: result?.signal ?? null, cause: 'cancelled', detail: 'stopped: the migration was cancelled' };
}
