/**
 * The runner: turns core decisions into effects. It files and approves migrations, runs the gate,
 * schedules attempts (decideStarts), supervises them step by step through the substrate, records
 * outcomes, applies operators' recovery actions, and tears down issues.
 *
 * Its own lifecycle is explicit: start() re-attaches to attempts that ran while it was away and
 * finishes interrupted teardowns; stop() stops scheduling and watching but never stops a job.
 */
import { mkdirSync } from 'node:fs';
import { appendFile, mkdir, rmdir, statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { describeRejection } from '../core/admission.ts';
import { FerryError, coerceError } from '../core/errors.ts';
import { parseOutputLine } from '../core/job-output.ts';
import { holdsTenant, isTerminal } from '../core/lifecycle.ts';
import { planRecovery } from '../core/recovery.ts';
import { parseMigrationRequest, parseTenantInput } from '../core/request-schema.ts';
import { decideStarts } from '../core/scheduling.ts';
import type { IssueDefaults } from '../core/issue-ref.ts';
import type { FailureCause, MigrationState, RecoveryAction, Resources, Tenant, Verdict } from '../core/types.ts';
import type { ArtifactRecord, AttemptRecord, MigrationRecord, TenantRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';
import type { ArtifactKind, StepResult, StepSpec, Substrate } from '../substrates/substrate.ts';
import { runGate } from './gate.ts';
import { RunnerMetrics } from './metrics.ts';

export interface RunnerOptions {
  readonly store: Store;
  readonly substrate: Substrate;
  /** Attempt logs live here: <logsDir>/<migration>/attempt-<n>.log */
  readonly logsDir: string;
  /** Default data folder of a tenant registered without `data` (process substrate). */
  readonly tenantsDir?: string | undefined;
  /** What the scheduler may hand out at once; default: the substrate's capacity. */
  readonly capacity?: Resources | undefined;
  readonly issueDefaults?: IssueDefaults | undefined;
  readonly now?: () => Date;
  /** Safety-net scheduling interval; scheduling also runs on every change. Default 1000 ms. */
  readonly tickMs?: number;
  readonly log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface Actor {
  readonly name: string;
}

export interface RemovedArtifact {
  readonly migrationId: string;
  readonly kind: string;
  readonly ref: string;
}

export interface PendingArtifact extends RemovedArtifact {
  readonly error: string;
}

/** Order of removal on teardown: what uses an artifact goes before it. */
const TEARDOWN_ORDER = ['job', 'snapshot', 'scratch', 'log'];

/** Raised for a verdict that refuses: carries the reasons for the 422 body. */
export class RejectedError extends FerryError {
  readonly verdict: Verdict;
  readonly migrationId: string | null;
  constructor(verdict: Verdict, migrationId: string | null, message?: string) {
    super('FERRY_REJECTED', message ?? `rejected: ${describeRejection(verdict)}`, { reasons: verdict.reasons, verdict, migrationId });
    this.verdict = verdict;
    this.migrationId = migrationId;
  }
}

interface ActiveAttempt {
  readonly done: Promise<void>;
  cancel: { actor: string; reason: string } | null;
  jobRef: string | null;
}

const SYSTEM = 'ferry';

export class Runner {
  readonly store: Store;
  readonly substrate: Substrate;
  readonly metrics = new RunnerMetrics();
  private readonly opts: RunnerOptions;
  private readonly now: () => Date;
  private readonly active = new Map<string, ActiveAttempt>();
  private readonly queuedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private tickAgain = false;
  private stopped = true;

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.substrate = opts.substrate;
    this.now = opts.now ?? (() => new Date());
  }

  get issueDefaults(): IssueDefaults | undefined {
    return this.opts.issueDefaults;
  }

  get capacity(): Resources {
    return this.opts.capacity ?? this.substrate.capacity();
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, fields);
  }

  // ── service lifecycle ────────────────────────────────────────────────────

  async start(): Promise<void> {
    mkdirSync(this.opts.logsDir, { recursive: true });
    this.stopped = false;
    const limits = this.substrate.limits();
    if (!limits.enforced) this.log('warn', `LIMITS NOT ENFORCED: ${limits.detail}`);
    // Finish teardowns a crash interrupted, then re-attach to attempts that ran while we were away.
    for (const issue of await this.store.issuesPendingTeardown()) await this.teardownIssue(issue, SYSTEM);
    await this.sweepOrphans();
    for (const m of await this.store.listMigrations({ state: ['running'] })) this.superviseAttempt(m, true);
    // Approved but not yet through the gate: a crash fell between the two transitions of approve().
    for (const m of await this.store.listMigrations({ state: ['approved'] })) {
      await this.gateApproved(m).catch((err: unknown) => {
        if (!(err instanceof RejectedError)) this.log('warn', `gate of approved migration ${m.id} failed: ${coerceError(err).message}`);
      });
    }
    this.timer = setInterval(() => this.poke(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    this.poke();
  }

  /** Stop scheduling and watching. Running jobs keep running; the next start() re-attaches. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    this.active.clear();
  }

  /** Wait for every attempt this runner supervises to end (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.active.size > 0 || this.ticking) {
      await Promise.all([...this.active.values()].map((a) => a.done));
      await this.ticking;
    }
  }

  // ── tenants ──────────────────────────────────────────────────────────────

  async putTenant(id: string, body: unknown): Promise<{ tenant: TenantRecord; created: boolean }> {
    const input = parseTenantInput(body);
    const data = input.data ?? (this.opts.tenantsDir ? join(this.opts.tenantsDir, id) : `ferry-tenant-${id}`);
    const result = await this.store.putTenant(id, input.steadyState, data, this.now());
    this.poke();
    return result;
  }

  // ── filing ───────────────────────────────────────────────────────────────

  /** Filing-time verdict; changes nothing. Throws FERRY_INVALID_REQUEST for a bad document. */
  async check(document: unknown): Promise<Verdict> {
    const request = parseMigrationRequest(document, this.opts.issueDefaults);
    const verdict = await runGate(this.store, this.capacity, request.tenant, request.peak, this.now());
    if (!verdict.ok) for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'check', code: r.code });
    return verdict;
  }

  /** File a request: admitted → a new migration in `filed`; refused → RejectedError and nothing stored. */
  async file(document: unknown, actor: Actor): Promise<MigrationRecord> {
    const request = parseMigrationRequest(document, this.opts.issueDefaults);
    const issue = await this.store.getIssue(request.issue);
    if (issue?.closedAt) {
      throw new FerryError('FERRY_ISSUE_CLOSED', `issue ${request.issue} is closed; migrations are filed on open issues only (open a new one)`, {
        issue: request.issue,
      });
    }
    const verdict = await runGate(this.store, this.capacity, request.tenant, request.peak, this.now());
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'filing', code: r.code });
      throw new RejectedError(verdict, null);
    }
    const id = `m-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const m = await this.store.insertMigration(
      { id, issue: request.issue, tenant: request.tenant, request, verdict, filedBy: actor.name },
      { actor: actor.name, kind: 'file', detail: { verdict } },
      this.now(),
    );
    this.metrics.transitions.inc({ to: 'filed' });
    return m;
  }

  /** filed → approved, then the gate: → queued, or → rejected with the gate's reasons. */
  async approve(id: string, actor: Actor): Promise<MigrationRecord> {
    const m = await this.store.requireMigration(id);
    if (m.state !== 'filed') throw wrongState(m, 'approve', 'filed');
    await this.move(m, 'filed', 'approved', { actor: actor.name, kind: 'approve' });
    return this.gateApproved(m);
  }

  /** approved → the gate: → queued, or → rejected (RejectedError) with the gate's reasons. */
  private async gateApproved(m: MigrationRecord): Promise<MigrationRecord> {
    const id = m.id;
    const verdict = await runGate(this.store, this.capacity, m.tenant, m.peak, this.now());
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      const rejected = await this.move(m, 'approved', 'rejected', { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } }, { verdict });
      throw new RejectedError(verdict, rejected.id, `approved, but the admission gate rejected it: ${describeRejection(verdict)}`);
    }
    const queued = await this.move(m, 'approved', 'queued', { actor: SYSTEM, kind: 'gate-pass', detail: { verdict } }, { verdict });
    this.queuedAt.set(id, performance.now());
    this.poke();
    return queued;
  }

  // ── recovery actions ─────────────────────────────────────────────────────

  async act(id: string, action: RecoveryAction, reason: string, actor: Actor): Promise<MigrationRecord> {
    if (!reason.trim()) throw new FerryError('FERRY_INVALID_REQUEST', `${action} needs a reason: say why, for the migration's history`);
    const m = await this.store.requireMigration(id);
    if (m.state !== 'held') throw wrongState(m, action, 'held');
    const plan = planRecovery(action, {
      attempts: m.attempts,
      failedStep: m.failedStep ?? 0,
      checkpoint: m.checkpoint && m.checkpoint.step === (m.failedStep ?? 0) ? m.checkpoint.text : null,
      snapshotAt: m.snapshot?.at ?? null,
      hasWipeStep: m.request.wipe !== undefined,
      stepNames: m.request.steps.map((s) => s.name),
    });
    if (plan.action === 'accept-partial' || plan.action === 'abandon') {
      const to: MigrationState = plan.action === 'abandon' ? 'abandoned' : 'accepted-partial';
      return this.move(m, 'held', to, { actor: actor.name, kind: action, reason });
    }
    // Re-admission: the tenant's steady-state may have shrunk since the last attempt.
    const verdict = await runGate(this.store, this.capacity, m.tenant, m.peak, this.now());
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      await this.store.appendEvent(m.id, 'held', { actor: actor.name, kind: `${action}-refused`, reason: describeRejection(verdict), detail: { verdict } }, this.now());
      throw new RejectedError(verdict, m.id, `${action} refused by the admission gate; the migration stays held: ${describeRejection(verdict)}`);
    }
    const next =
      plan.action === 'wipe-and-retry'
        ? { fromStep: plan.restore === 'wipe-step' ? -1 : 0, checkpoint: null, restore: plan.restore }
        : plan.action === 'resume'
          ? { fromStep: plan.fromStep, checkpoint: plan.checkpoint, restore: null }
          : null;
    if (next === null) throw new FerryError('FERRY_INTERNAL', `unhandled action ${action}`);
    const queued = await this.move(m, 'held', 'queued', { actor: actor.name, kind: action, reason, detail: { next } }, { next, verdict });
    this.queuedAt.set(id, performance.now());
    this.poke();
    return queued;
  }

  // ── cancel and closure ───────────────────────────────────────────────────

  /** Cancel a non-terminal migration; a running attempt is stopped first. */
  async cancel(id: string, actor: Actor, reason: string): Promise<MigrationRecord> {
    for (let tries = 0; ; tries++) {
      const m = await this.store.requireMigration(id);
      if (isTerminal(m.state)) throw wrongState(m, 'cancel', 'filed, approved, queued, running or held');
      if (m.state === 'running') {
        const active = this.active.get(id);
        if (!active) throw new FerryError('FERRY_CONFLICT', `migration ${id} is running but this runner does not supervise it yet; retry in a moment`);
        active.cancel ??= { actor: actor.name, reason };
        if (active.jobRef) await this.substrate.stop(active.jobRef);
        await active.done;
        const after = await this.store.requireMigration(id);
        if (after.state === 'cancelled' || isTerminal(after.state)) return after;
        continue;
      }
      try {
        return await this.move(m, m.state, 'cancelled', { actor: actor.name, kind: 'cancel', reason });
      } catch (err) {
        // Lost a race with the scheduler (queued → running): look again.
        if (err instanceof FerryError && err.code === 'FERRY_CONFLICT' && tries < 5) continue;
        throw err;
      }
    }
  }

  /** Close an issue: cancel what is not final, then deprovision every artifact. Idempotent. */
  async closeIssue(ref: string, actor: Actor): Promise<{ issue: string; cancelled: string[]; removed: RemovedArtifact[]; pending: PendingArtifact[] }> {
    await this.store.markIssueClosed(ref, actor.name, this.now());
    const cancelled: string[] = [];
    for (const m of await this.store.listMigrations({ issue: ref })) {
      if (isTerminal(m.state)) continue;
      await this.cancel(m.id, actor, `issue ${ref} closed`);
      cancelled.push(m.id);
    }
    const { removed, pending } = await this.teardownIssue(ref, actor.name);
    return { issue: ref, cancelled, removed, pending };
  }

  private async teardownIssue(ref: string, actor: string): Promise<{ removed: RemovedArtifact[]; pending: PendingArtifact[] }> {
    // A migration still non-terminal here was left by a crash between closing and cancelling.
    for (const m of await this.store.listMigrations({ issue: ref })) {
      if (!isTerminal(m.state) && m.state !== 'running') await this.move(m, m.state, 'cancelled', { actor, kind: 'cancel', reason: `issue ${ref} closed` }).catch(() => undefined);
    }
    const removed: RemovedArtifact[] = [];
    const pending: PendingArtifact[] = [];
    // Jobs first: their scratch and snapshot volumes cannot go while a container still uses them.
    const present = (await this.store.listArtifacts({ issue: ref, present: true })).sort((a, b) => TEARDOWN_ORDER.indexOf(a.kind) - TEARDOWN_ORDER.indexOf(b.kind));
    for (const a of present) {
      if (this.active.has(a.migrationId)) {
        pending.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref, error: 'its attempt is still stopping' });
        continue;
      }
      try {
        await this.substrate.remove(a.kind as ArtifactKind, a.ref);
        // The migration's log folder is the runner's: gone with its last log.
        if (a.kind === 'log') await rmdir(dirname(a.ref)).catch(() => undefined);
      } catch (err) {
        // Keep going: one stubborn artifact must not keep the others. The next start retries it.
        pending.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref, error: coerceError(err).message });
        continue;
      }
      await this.store.markArtifact(a.id, 'removed', this.now());
      this.metrics.artifactsRemoved.inc({ kind: a.kind });
      removed.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref });
    }
    if (pending.length === 0) await this.store.markTeardownDone(ref, this.now());
    else this.log('warn', `issue ${ref}: ${pending.length} artifact(s) not removed yet; retried on the next close or start`, { pending });
    return { removed, pending };
  }

  /**
   * Orphan sweep: objects on the substrate carrying Ferry's labels whose issue is closed (e.g. made
   * by a step that started just before a crash, after its artifact was recorded as removed). Objects
   * of issues this store does not know are left alone: they may belong to another Ferry.
   */
  private async sweepOrphans(): Promise<void> {
    let objects;
    try {
      objects = await this.substrate.listLabelled();
    } catch (err) {
      this.log('warn', `orphan sweep skipped: ${coerceError(err).message}`);
      return;
    }
    const closed = new Map<string, boolean>();
    for (const o of objects) {
      if (!closed.has(o.issue)) closed.set(o.issue, Boolean((await this.store.getIssue(o.issue))?.closedAt));
      if (!closed.get(o.issue)) continue;
      try {
        await this.substrate.remove(o.kind, o.ref);
        this.metrics.artifactsRemoved.inc({ kind: o.kind });
        this.log('info', `orphan sweep removed ${o.kind} ${o.ref} of closed issue ${o.issue}`);
      } catch (err) {
        this.log('warn', `orphan sweep could not remove ${o.kind} ${o.ref}: ${coerceError(err).message}`);
      }
    }
  }

  // ── scheduling ───────────────────────────────────────────────────────────

  /** Ask for a scheduling pass soon. Passes never overlap. */
  poke(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = this.tick()
      .catch((err: unknown) => this.log('error', `scheduling failed: ${coerceError(err).message}`))
      .finally(() => {
        this.ticking = null;
        if (this.tickAgain && !this.stopped) {
          this.tickAgain = false;
          this.poke();
        }
      });
  }

  private async tick(): Promise<void> {
    const queued = await this.store.listMigrations({ state: ['queued'] });
    if (queued.length === 0) return;
    const holders = new Map<string, string>();
    for (const h of await this.store.listHolders()) holders.set(h.tenant, h.id);
    const inUse: Record<string, number> = {};
    for (const m of await this.store.listMigrations({ state: ['running'] })) {
      for (const [d, v] of Object.entries(m.peak)) inUse[d] = (inUse[d] ?? 0) + v;
    }
    const byId = new Map(queued.map((m) => [m.id, m]));
    const starts = decideStarts({
      queued: queued.map((m, seq) => ({ id: m.id, tenant: m.tenant, peak: m.peak, seq })),
      holders,
      inUse,
      capacity: this.capacity,
    });
    for (const id of starts) {
      if (this.stopped) return;
      const m = byId.get(id);
      if (m) await this.startAttempt(m);
    }
  }

  private async startAttempt(m: MigrationRecord): Promise<void> {
    const now = this.now();
    const verdict = await runGate(this.store, this.capacity, m.tenant, m.peak, now);
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      // Never ran: rejected. Ran before: back to held with the gate's reasons, data as it is.
      if (m.attempts === 0) await this.move(m, 'queued', 'rejected', { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } }, { verdict });
      else await this.move(m, 'queued', 'held', { actor: SYSTEM, kind: 'refuse', reason: describeRejection(verdict), detail: { verdict } }, { verdict, heldCause: 'gate', heldDetail: describeRejection(verdict) });
      return;
    }
    const number = m.attempts + 1;
    const fromStep = m.next?.fromStep ?? 0;
    let started: MigrationRecord;
    try {
      started = await this.store.startAttempt({
        id: m.id,
        number,
        fromStep,
        logRef: join(this.opts.logsDir, m.id, `attempt-${number}.log`),
        limitsEnforced: this.substrate.limits().enforced,
        verdict,
        event: { actor: SYSTEM, kind: 'start', reason: `attempt ${number} from step ${fromStep < 0 ? 'wipe' : fromStep + 1}`, detail: { verdict } },
        now,
      });
    } catch (err) {
      if (err instanceof FerryError && (err.code === 'FERRY_TENANT_BUSY' || err.code === 'FERRY_CONFLICT')) return;
      throw err;
    }
    this.metrics.transitions.inc({ to: 'running' });
    this.superviseAttempt(started, false);
  }

  // ── attempts ─────────────────────────────────────────────────────────────

  private superviseAttempt(m: MigrationRecord, reattach: boolean): void {
    if (this.active.has(m.id)) return;
    const entry: ActiveAttempt = { done: Promise.resolve(), cancel: null, jobRef: null };
    this.metrics.running.inc();
    const done = this.runAttempt(m, entry, reattach)
      .catch(async (err: unknown) => {
        // A failure of Ferry's own effects (disk, substrate) fails the attempt: held, never retried.
        const e = coerceError(err);
        this.log('error', `attempt of ${m.id} failed inside Ferry: ${e.message}`);
        await this.untilStored(`hold of ${m.id}`, async () => {
          const current = await this.store.getMigration(m.id);
          if (current?.state !== 'running') return;
          await this.finish(current, current.attempts, current.failedStep ?? 0, { exitCode: null, signal: null, cause: 'lost', detail: `Ferry could not run the step: ${e.message}` }, entry, false);
        }).catch(() => undefined);
      })
      .finally(() => {
        this.active.delete(m.id);
        this.metrics.running.dec();
        this.poke();
      });
    (entry as { done: Promise<void> }).done = done;
    this.active.set(m.id, entry);
  }

  private async runAttempt(m: MigrationRecord, entry: ActiveAttempt, reattach: boolean): Promise<void> {
    const attempt = await this.store.getAttempt(m.id, m.attempts);
    if (!attempt) throw new FerryError('FERRY_INTERNAL', `migration ${m.id} is running without attempt ${m.attempts}`);
    const tenantRecord = await this.store.getTenant(m.tenant);
    if (!tenantRecord) throw new FerryError('FERRY_INTERNAL', `tenant ${m.tenant} disappeared`);
    const tenant: Tenant = { id: tenantRecord.id, steadyState: tenantRecord.steadyState, data: tenantRecord.data };
    const steps = m.request.steps;
    const plan: number[] = [];
    for (let i = attempt.fromStep; i < steps.length; i++) plan.push(i);

    let position = 0;
    if (reattach) {
      if (attempt.step === null || attempt.jobRef === null) {
        // The runner died while preparing the attempt: nothing ran, but we cannot say what was done.
        return void (await this.finish(m, attempt.number, attempt.fromStep, { exitCode: null, signal: null, cause: 'lost', detail: 'lost: Ferry stopped while preparing the attempt, before its first step started' }, entry));
      }
      position = plan.indexOf(attempt.step);
    } else {
      await this.prepareAttempt(m, tenant, attempt);
    }

    const scratchRef = this.substrate.scratchRef(m.id);
    for (; position < plan.length; position++) {
      const stepIndex = plan[position] as number;
      const step = stepIndex < 0 ? { name: 'wipe', run: m.request.wipe ?? [], timeoutMs: undefined } : (steps[stepIndex] as (typeof steps)[number]);
      const env: Record<string, string> = {
        ...m.request.env,
        FERRY_MIGRATION_ID: m.id,
        FERRY_ATTEMPT: String(attempt.number),
        FERRY_STEP: step.name,
        FERRY_TENANT: m.tenant,
      };
      const checkpoint = m.next?.checkpoint ?? null;
      if (checkpoint !== null && stepIndex === attempt.fromStep) env.FERRY_CHECKPOINT = checkpoint;
      const spec: StepSpec = {
        migrationId: m.id,
        issue: m.issue,
        tenant,
        attempt: attempt.number,
        stepIndex,
        stepName: step.name,
        argv: step.run,
        env,
        limits: m.peak,
        timeoutMs: step.timeoutMs,
        image: m.request.image,
        scratchRef,
        logPath: attempt.logRef,
      };
      const ref = this.substrate.jobRef(spec);
      entry.jobRef = ref;
      const resumedHere = reattach && stepIndex === attempt.step;
      if (!resumedHere) {
        if (entry.cancel) return void (await this.finish(m, attempt.number, stepIndex, cancelledResult(), entry));
        const artifact = await this.store.recordArtifact({ migrationId: m.id, issue: m.issue, kind: 'job', ref }, this.now());
        await this.store.updateAttempt(m.id, attempt.number, { step: stepIndex, jobRef: ref });
        await appendLogLine(attempt.logRef, `── ferry: attempt ${attempt.number}, step ${stepIndex < 0 ? 'wipe' : `${stepIndex + 1}/${steps.length}`} ${step.name} ──`);
        await this.substrate.start(spec, ref);
        await this.store.markArtifact(artifact.id, 'created', this.now());
        const queued = this.queuedAt.get(m.id);
        if (queued !== undefined) {
          this.metrics.queueToStart.observe((performance.now() - queued) / 1000);
          this.queuedAt.delete(m.id);
        }
        if (entry.cancel) await this.substrate.stop(ref);
      }
      const signals = new SignalSink(this.store, m.id, stepIndex, this.now, (msg) => this.log('warn', msg));
      const result = await noteFullDisk(await this.substrate.watch(ref, (line) => signals.line(line)), attempt.logRef);
      await this.untilStored(`checkpoint of ${m.id}`, () => signals.flush());
      if (result.cause !== null) return void (await this.finish(m, attempt.number, stepIndex, entry.cancel ? cancelledResult(result) : result, entry));
      if (entry.cancel && position < plan.length - 1) return void (await this.finish(m, attempt.number, stepIndex, cancelledResult(result), entry));
    }
    await this.untilStored(`success of ${m.id}`, () => this.store.finishAttempt({
      id: m.id,
      number: attempt.number,
      to: 'succeeded',
      attempt: { exitCode: 0, cause: null, detail: 'all steps succeeded' },
      patch: { next: null },
      event: { actor: SYSTEM, kind: 'succeed', reason: `attempt ${attempt.number}: all steps succeeded` },
      now: this.now(),
    }));
    this.metrics.transitions.inc({ to: 'succeeded' });
  }

  /** Per-job artifacts before the first step: scratch, snapshot (attempt 1), restore (wipe-and-retry). */
  private async prepareAttempt(m: MigrationRecord, tenant: Tenant, attempt: AttemptRecord): Promise<void> {
    const now = this.now();
    const log = await this.store.recordArtifact({ migrationId: m.id, issue: m.issue, kind: 'log', ref: attempt.logRef }, now);
    await appendLogLine(attempt.logRef, `── ferry: migration ${m.id}, attempt ${attempt.number}, tenant ${m.tenant}, limits ${this.substrate.limits().enforced ? 'enforced' : 'NOT enforced'} ──`);
    await this.store.markArtifact(log.id, 'created', this.now());

    const scratchRef = this.substrate.scratchRef(m.id);
    const scratch = await this.store.recordArtifact({ migrationId: m.id, issue: m.issue, kind: 'scratch', ref: scratchRef }, now);
    if (scratch.state !== 'created') {
      await this.substrate.createScratch(scratchRef, { migrationId: m.id, issue: m.issue, tenant });
      await this.store.markArtifact(scratch.id, 'created', this.now());
    }

    if (attempt.number === 1) {
      const policy = m.request.snapshot;
      if (policy === 'always' || (policy === 'auto' && (await this.substrate.tenantDataExists(tenant)))) {
        const ref = this.substrate.snapshotRef(m.id);
        const snap = await this.store.recordArtifact({ migrationId: m.id, issue: m.issue, kind: 'snapshot', ref }, this.now());
        await this.substrate.snapshot(tenant, ref, { migrationId: m.id, issue: m.issue });
        const at = this.now();
        await this.store.markArtifact(snap.id, 'created', at);
        await this.store.updateMigration(m.id, { snapshot: { ref, at: at.toISOString() } }, at);
        await appendLogLine(attempt.logRef, `── ferry: snapshot of the tenant data taken (${ref}) ──`);
      }
    }
    if (m.next?.restore === 'snapshot' && m.snapshot) {
      await appendLogLine(attempt.logRef, `── ferry: restoring the tenant data from the snapshot taken at ${m.snapshot.at} ──`);
      await this.substrate.restore(tenant, m.snapshot.ref);
    }
  }

  private async finish(m: MigrationRecord, number: number, stepIndex: number, result: StepResult, entry: ActiveAttempt, retry = true): Promise<void> {
    const cancelled = result.cause === 'cancelled' && entry.cancel !== null;
    const stepName = stepIndex < 0 ? 'wipe' : (m.request.steps[stepIndex]?.name ?? String(stepIndex));
    const where = `step ${stepIndex < 0 ? 'wipe' : stepIndex + 1} (${stepName})`;
    const record = () => this.store.finishAttempt({
      id: m.id,
      number,
      to: cancelled ? 'cancelled' : 'held',
      attempt: { exitCode: result.exitCode, signal: result.signal, cause: result.cause, detail: `${where}: ${result.detail}` },
      patch: cancelled ? { next: null } : { failedStep: stepIndex, heldCause: result.cause as FailureCause, heldDetail: `${where} ${result.detail}`, next: null },
      event: cancelled
        ? { actor: entry.cancel?.actor ?? SYSTEM, kind: 'cancel', reason: entry.cancel?.reason ?? 'cancelled' }
        : { actor: SYSTEM, kind: 'fail', reason: `${where} ${result.detail}`, detail: { cause: result.cause, exitCode: result.exitCode, signal: result.signal } },
      now: this.now(),
    });
    await (retry ? this.untilStored(`outcome of ${m.id}`, record) : record());
    this.metrics.transitions.inc({ to: cancelled ? 'cancelled' : 'held' });
  }

  /**
   * Retry a store write that records what already happened (an outcome, a checkpoint) until the
   * store takes it: a full disk must not leave a migration `running` with no one watching it. A
   * typed error is not retried (a conflict: the state moved on); a stop gives up, and the next
   * start re-attaches and records the outcome from the job's result.
   */
  private async untilStored<T>(what: string, write: () => Promise<T>): Promise<T> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 5000)) {
      try {
        return await write();
      } catch (err) {
        if (this.stopped || err instanceof FerryError) throw err;
        this.log('warn', `cannot record the ${what} yet (retrying in ${delay} ms): ${coerceError(err).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  private async move(
    m: MigrationRecord,
    from: MigrationState,
    to: MigrationState,
    event: { actor: string; kind: string; reason?: string; detail?: unknown },
    patch: Parameters<Store['transition']>[0]['patch'] = {},
  ): Promise<MigrationRecord> {
    const next = await this.store.transition({ id: m.id, from, to, patch, event, now: this.now() });
    this.metrics.transitions.inc({ to });
    return next;
  }

  /** Whether a migration in this state holds its tenant (exposed for status pages). */
  static holds(m: MigrationRecord): boolean {
    return holdsTenant(m.state, m.attempts);
  }

  /** Present artifacts of a migration (for teardown reports and status). */
  async artifacts(id: string): Promise<ArtifactRecord[]> {
    return this.store.listArtifacts({ migrationId: id });
  }
}

/** Applies checkpoint and progress lines, coalesced so a chatty job costs a write per 200 ms at most. */
class SignalSink {
  private checkpoint: string | null = null;
  private progress: { done: number; total: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly store: Store;
  private readonly id: string;
  private readonly step: number;
  private readonly now: () => Date;

  private readonly warn: (msg: string) => void;

  constructor(store: Store, id: string, step: number, now: () => Date, warn: (msg: string) => void) {
    this.store = store;
    this.id = id;
    this.step = step;
    this.now = now;
    this.warn = warn;
  }

  line(line: string): void {
    const signal = parseOutputLine(line);
    if (!signal) return;
    if (signal.kind === 'checkpoint') this.checkpoint = signal.text;
    else this.progress = { done: signal.done, total: signal.total };
    this.timer ??= setTimeout(() => {
      this.timer = null;
      // A failed write keeps the values for the next one (or flush); it must never be an
      // unhandled rejection, which would end the server.
      this.writing = this.writing.then(() => this.write()).catch((err: unknown) => this.warn(`cannot record progress of ${this.id} yet: ${coerceError(err).message}`));
    }, 200);
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.writing;
    await this.write();
  }

  private async write(): Promise<void> {
    if (this.checkpoint === null && this.progress === null) return;
    await this.store.updateMigration(
      this.id,
      {
        ...(this.checkpoint === null ? {} : { checkpoint: { step: this.step, text: this.checkpoint } }),
        ...(this.progress === null ? {} : { progress: this.progress }),
      },
      this.now(),
    );
    this.checkpoint = null;
    this.progress = null;
  }
}

function cancelledResult(result?: StepResult): StepResult {
  return { exitCode: result?.exitCode ?? null, signal: result?.signal ?? null, cause: 'cancelled', detail: 'stopped: the migration was cancelled' };
}

function wrongState(m: MigrationRecord, what: string, needed: string): FerryError {
  return new FerryError('FERRY_WRONG_STATE', `migration ${m.id} is ${m.state}; ${what} applies only to a migration that is ${needed}`, {
    id: m.id,
    state: m.state,
  });
}

/** Below this many free bytes, the filesystem of the attempt log counts as full. */
const FULL_DISK_BYTES = 1024 * 1024;

/** A step that failed while the attempt log's filesystem was full says so: that is likely why. */
async function noteFullDisk(result: StepResult, logPath: string): Promise<StepResult> {
  if (result.cause === null || result.cause === 'cancelled') return result;
  try {
    const fs = await statfs(dirname(logPath));
    const free = fs.bavail * fs.bsize;
    if (free >= FULL_DISK_BYTES) return result;
    return { ...result, detail: `${result.detail}; the disk holding Ferry's data folder was full when the step ended (${free} bytes free), so the job could not write its output: free space, then resume or wipe-and-retry` };
  } catch {
    return result;
  }
}

async function appendLogLine(path: string, line: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, `${line}\n`);
}
