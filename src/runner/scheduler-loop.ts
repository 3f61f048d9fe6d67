/**
 * The scheduler loop: a pass asks the core which queued migrations may start now (decideStarts:
 * one holder per tenant, the node's capacity, backfill) and launches their attempts. A pass runs
 * on every change (poke) and on a safety-net interval; passes never overlap.
 */
import { join } from 'node:path';
import { describeRejection } from '../core/admission.ts';
import { FerryError, coerceError } from '../core/errors.ts';
import { decideStarts } from '../core/scheduling.ts';
import { stepLabel } from '../core/steps.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';
import type { AttemptSupervisor } from './attempt-supervisor.ts';
import { runGate } from './gate.ts';
import { SYSTEM, type RunnerContext } from './runner-context.ts';
import { stepSpec } from './step-spec.ts';
import { asTenant, tenantRead } from './tenant-view.ts';

export class SchedulerLoop {
  private readonly ctx: RunnerContext;
  private readonly supervisor: AttemptSupervisor;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private tickAgain = false;

  constructor(ctx: RunnerContext, supervisor: AttemptSupervisor) {
    this.ctx = ctx;
    this.supervisor = supervisor;
  }

  /** The pass under way, if any. */
  get pass(): Promise<void> | null {
    return this.ticking;
  }

  start(tickMs: number): void {
    this.timer = setInterval(() => this.poke(), tickMs);
    this.timer.unref();
    this.poke();
  }

  /** No further pass; the one under way ends first. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
  }

  /** Ask for a scheduling pass soon. Passes never overlap. */
  poke(): void {
    if (this.ctx.isStopped()) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = this.tick()
      .catch((err: unknown) => this.ctx.log('error', `scheduling failed: ${coerceError(err).message}`))
      .finally(() => {
        this.ticking = null;
        if (this.tickAgain && !this.ctx.isStopped()) {
          this.tickAgain = false;
          this.poke();
        }
      });
  }

  private async tick(): Promise<void> {
    const { store, nodeName } = this.ctx;
    // A node that cannot be sure its lease is still its own starts nothing.
    if (!this.ctx.canStart()) return;
    const unadopted = await this.adoptTenants();
    const queued = (await store.listQueued(nodeName)).filter((m) => !unadopted.has(m.tenant));
    if (queued.length === 0) return;
    const holders = new Map<string, string>();
    for (const h of await store.listHolders()) holders.set(h.tenant, h.id);
    // A job of an attempt another node took over still runs for these: nothing new starts beside it.
    for (const tenant of this.ctx.blockedTenants) if (!holders.has(tenant)) holders.set(tenant, '(a job of a taken-over attempt)');
    const inUse = await store.runningPeaks(nodeName);
    const starts = decideStarts({
      queued: queued.map((m, seq) => ({ id: m.id, tenant: m.tenant, peak: m.peak, seq })),
      holders,
      inUse,
      capacity: this.ctx.gateLimits().capacity,
    });
    for (const id of starts) {
      if (this.ctx.isStopped() || !this.ctx.canStart()) return;
      const m = await store.getMigration(id);
      if (m?.state === 'queued') await this.launchAttempt(m);
    }
  }

  /**
   * Hand the data of tenants registered for this node through another node to their identity. Returns
   * the tenants whose hand-over failed: their migrations wait (the next pass tries again).
   */
  private async adoptTenants(): Promise<Set<string>> {
    const { ctx } = this;
    const failed = new Set<string>();
    for (const t of await ctx.store.listUnadoptedTenants(ctx.nodeName)) {
      if (ctx.adopting.has(t.id)) {
        failed.add(t.id); // its registration hands it over right now
        continue;
      }
      try {
        const handedOver = await ctx.substrate.adoptTenantData(asTenant(t));
        await ctx.store.markTenantAdopted(t.id, t.updatedAt, ctx.now());
        if (handedOver) ctx.log('info', `tenant ${t.id}: ${handedOver}`);
      } catch (err) {
        failed.add(t.id);
        ctx.log('warn', `tenant ${t.id}: cannot hand its data to its identity yet: ${coerceError(err).message}`);
      }
    }
    return failed;
  }

  /**
   * Launch the next attempt of a queued migration: the gate once more, then the attempt's start
   * recorded in the store (queued → running, with its artifacts), then its supervision.
   */
  private async launchAttempt(m: MigrationRecord): Promise<void> {
    const { ctx } = this;
    const { store, substrate } = ctx;
    const now = ctx.now();
    const gate = await runGate(store, () => ctx.gateLimits(), m.tenant, m.peak, now);
    const { verdict } = gate;
    if (!verdict.ok) {
      for (const r of verdict.reasons) ctx.metrics.rejections.inc({ where: 'gate', code: r.code });
      // Never ran: rejected. Ran before: back to held with the gate's reasons, data as it is.
      if (m.attempts === 0) await ctx.move(m, { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } }, { verdict });
      else
        await ctx.move(
          m,
          { actor: SYSTEM, kind: 'refuse', reason: describeRejection(verdict), detail: { verdict } },
          { verdict, heldCause: 'gate', heldDetail: describeRejection(verdict) },
        );
      return;
    }
    // The tenant the gate just judged is the one the job runs as: not read a second time.
    const tenant = tenantRead(m, gate.tenant);
    const number = m.attempts + 1;
    const fromStep = m.next?.fromStep ?? 0;
    const logRef = join(ctx.logsDir, m.id, `attempt-${number}.log`);
    const scratchRef = substrate.scratchRef(m.id);
    const firstJob = substrate.jobRef(stepSpec(m, { tenant, attempt: number, stepIndex: fromStep, fromStep, logRef, scratchRef }));
    // Every artifact of the attempt's start is recorded with the start itself, before any exists.
    const artifacts: Array<{ kind: string; ref: string }> = [
      { kind: 'log', ref: logRef },
      { kind: 'scratch', ref: scratchRef },
    ];
    const policy = m.request.snapshot;
    const snapshot = number === 1 && (policy === 'always' || (policy === 'auto' && (await substrate.tenantDataExists(tenant))));
    if (snapshot) artifacts.push({ kind: 'snapshot', ref: substrate.snapshotRef(m.id) });
    artifacts.push({ kind: 'job', ref: firstJob });
    let started: Awaited<ReturnType<Store['startAttempt']>>;
    try {
      started = await store.startAttempt({
        id: m.id,
        number,
        fromStep,
        logRef,
        limitsEnforced: substrate.limits().enforced,
        isolated: substrate.isolation().isolated,
        verdict,
        event: { actor: SYSTEM, reason: `attempt ${number} from step ${stepLabel(fromStep)}`, detail: { verdict } },
        now,
        firstJob: { step: fromStep, ref: firstJob },
        artifacts,
        lease: ctx.lease(),
      });
    } catch (err) {
      // The tenant has another holder, the migration moved meanwhile (a cancel), or this node's
      // lease was taken over: nothing was recorded, so nothing is left to undo.
      if (err instanceof FerryError && (err.code === 'FERRY_TENANT_BUSY' || err.code === 'FERRY_CONFLICT')) return;
      if (err instanceof FerryError && err.code === 'FERRY_FENCED') return ctx.onFenced();
      throw err;
    }
    ctx.metrics.transitions.inc({ to: 'running' });
    this.supervisor.supervise(started.migration, { artifacts: started.artifacts, attempt: started.attempt, tenant });
  }
}
