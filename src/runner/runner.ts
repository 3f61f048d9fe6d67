/**
 * The runner: turns core decisions into effects. It files and approves migrations, runs the gate,
 * schedules attempts (decideStarts), supervises them step by step through the substrate, records
 * outcomes, applies operators' recovery actions, and tears down issues.
 *
 * Its own lifecycle is explicit: start() re-attaches to attempts that ran while it was away and
 * finishes interrupted teardowns; stop() stops scheduling and watching but never stops a job.
 */
import { mkdirSync, statfsSync } from 'node:fs';
import { appendFile, mkdir, rmdir, statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { describeRejection } from '../core/admission.ts';
import { FerryError, coerceError } from '../core/errors.ts';
import { parseOutputLine } from '../core/job-output.ts';
import { isTerminal } from '../core/lifecycle.ts';
import { planRecovery } from '../core/recovery.ts';
import { parseMigrationRequest, parseTenantInput } from '../core/request-schema.ts';
import { decideStarts } from '../core/scheduling.ts';
import { folderDataProblem, volumeDataProblem } from '../core/tenant-data.ts';
import type { IssueDefaults } from '../core/issue-ref.ts';
import type { FailureCause, MigrationState, RecoveryAction, Resources, Step, Tenant, Verdict } from '../core/types.ts';
import type { ArtifactRecord, AttemptRecord, MigrationRecord, TenantRecord } from '../store/records.ts';
import type { MigrationPatch, Store, TransitionEvent } from '../store/store.ts';
import type { ArtifactKind, StepResult, StepSpec, Substrate } from '../substrates/substrate.ts';
import { runGate, type GateLimits } from './gate.ts';
import { RunnerMetrics } from './metrics.ts';

export interface RunnerOptions {
  readonly store: Store;
  readonly substrate: Substrate;
  /** Attempt logs live here: <logsDir>/<migration>/attempt-<n>.log */
  readonly logsDir: string;
  /** Default data folder of a tenant registered without `data` (process substrate). */
  readonly tenantsDir?: string | undefined;
  /** Paths of Ferry's own state that tenant data must not overlap (process substrate). Default none. */
  readonly ferryPaths?: readonly string[] | undefined;
  /** uids (and gids) given to tenants that name no runAs. Default 200000-299999. */
  readonly uidRange?: { readonly first: number; readonly last: number } | undefined;
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
  /** The job of the current step, and whether it was started and not yet seen to end. */
  jobRef: string | null;
  step: number | null;
  jobStarted: boolean;
}

/** What a fresh start hands to the attempt's supervision: the artifacts the start recorded. */
interface FreshStart {
  readonly artifacts: readonly ArtifactRecord[];
  readonly tenant: Tenant;
}

const SYSTEM = 'ferry';
const DEFAULT_UID_RANGE = { first: 200_000, last: 299_999 };

/** The substrate's view of a stored tenant. Every tenant has an identity once the runner has started. */
function asTenant(t: TenantRecord): Tenant {
  if (!t.runAs) throw new FerryError('FERRY_INTERNAL', `tenant ${t.id} has no identity yet; restart Ferry to give it one`);
  return { id: t.id, steadyState: t.steadyState, data: t.data, runAs: t.runAs, allowRoot: t.allowRoot };
}

function tenantError(path: string, message: string): FerryError {
  return new FerryError('FERRY_INVALID_REQUEST', `the tenant is not valid: ${path}: ${message}`, { problems: [{ path, message }] });
}

export class Runner {
  readonly store: Store;
  readonly substrate: Substrate;
  readonly metrics = new RunnerMetrics();
  private readonly opts: RunnerOptions;
  private readonly now: () => Date;
  private readonly active = new Map<string, ActiveAttempt>();
  private readonly queuedAt = new Map<string, number>();
  /** Steps being prepared and started: a stop waits for them, so none is left half-started. */
  private readonly starting = new Set<Promise<void>>();
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

  /** Whether the disk holding Ferry's data folder is (nearly) full: less than 1 MiB left. */
  storageFull(): boolean {
    try {
      const fs = statfsSync(this.opts.logsDir);
      return fs.bavail * fs.bsize < 1024 * 1024;
    } catch {
      return false;
    }
  }

  get capacity(): Resources {
    return this.opts.capacity ?? this.substrate.capacity();
  }

  private get gateLimits(): GateLimits {
    return { capacity: this.capacity, enforced: this.substrate.limits().enforced ? this.substrate.enforcedDimensions() : null };
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
    const isolation = this.substrate.isolation();
    if (!isolation.isolated) this.log('warn', `JOBS NOT CONFINED: ${isolation.detail}`);
    // Tenants registered before identities existed get one now, and their data with it.
    for (const id of await this.store.assignMissingIdentities(this.opts.uidRange ?? DEFAULT_UID_RANGE, this.now())) {
      const tenant = await this.store.getTenant(id);
      const handedOver = tenant ? await this.substrate.adoptTenantData(asTenant(tenant)) : null;
      this.log('info', `tenant ${id} has no identity yet: gave it uid ${tenant?.runAs?.uid}${handedOver ? `; ${handedOver}` : ''}`);
    }
    // Re-attach to attempts that ran while we were away first: a teardown a crash interrupted may
    // have to stop one of them (cancel, with its grace), not find it unwatched and hold it `lost`.
    for (const m of await this.store.listMigrations({ state: ['running'] })) this.superviseAttempt(m, null);
    for (const issue of await this.store.issuesPendingTeardown()) await this.finishClosure(issue, { name: SYSTEM });
    await this.sweepOrphans();
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
    // A step being prepared (snapshot, restore) or started is seen through, so the next start
    // finds its job; then supervision ends (the substrate's close() ends pending watches).
    await Promise.allSettled([...this.starting]);
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

  /**
   * Register or update a tenant: its data place is checked (see core/tenant-data.ts), its identity
   * given, and its existing data handed over to that identity; the answer says what was handed over.
   */
  async putTenant(id: string, body: unknown): Promise<{ tenant: TenantRecord; created: boolean; handedOver: string | null }> {
    const input = parseTenantInput(body);
    const folders = this.substrate.kind === 'process';
    const defaultData = folders && this.opts.tenantsDir ? join(this.opts.tenantsDir, id) : `ferry-tenant-${id}`;
    const data = input.data ?? defaultData;
    const others = (await this.store.listTenants()).filter((t) => t.id !== id);
    const context = { tenantId: id, defaultData, ferryPaths: this.opts.ferryPaths ?? [], others };
    const problem = folders ? folderDataProblem(data, context) : volumeDataProblem(data, context);
    if (problem) throw tenantError('data', problem);
    if (input.allowRoot && folders) throw tenantError('allowRoot', 'process jobs never run as root; allowRoot is for the container substrate');
    const ownUid = process.getuid?.();
    if (input.runAs && input.runAs.uid === ownUid) throw tenantError('runAs.uid', `uid ${ownUid} is Ferry's own; give the tenant an identity of its own`);
    const result = await this.store.putTenant(
      id,
      { steadyState: input.steadyState, data, runAs: input.runAs ?? null, allowRoot: input.allowRoot ?? false },
      this.opts.uidRange ?? DEFAULT_UID_RANGE,
      this.now(),
    );
    const handedOver = await this.substrate.adoptTenantData(asTenant(result.tenant));
    if (handedOver) this.log('info', `tenant ${id}: ${handedOver}`);
    this.poke();
    return { tenant: result.tenant, created: result.created, handedOver };
  }

  // ── filing ───────────────────────────────────────────────────────────────

  /** Filing-time verdict; changes nothing. Throws FERRY_INVALID_REQUEST for a bad document. */
  async check(document: unknown): Promise<Verdict> {
    const request = parseMigrationRequest(document, this.opts.issueDefaults);
    const verdict = await runGate(this.store, this.gateLimits, request.tenant, request.peak, this.now());
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
    const verdict = await runGate(this.store, this.gateLimits, request.tenant, request.peak, this.now());
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
    await this.refuseOnClosedIssue(m.issue, 'approve');
    // The gate runs before the approval is recorded, so both moves commit together.
    const verdict = await runGate(this.store, this.gateLimits, m.tenant, m.peak, this.now());
    const approved = { event: { actor: actor.name, kind: 'approve' } as const };
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      await this.store.transitions({
        id,
        from: 'filed',
        moves: [approved, { patch: { verdict }, event: { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } } }],
        now: this.now(),
      });
      this.metrics.transitions.inc({ to: 'rejected' });
      throw new RejectedError(verdict, id, `approved, but the admission gate rejected it: ${describeRejection(verdict)}`);
    }
    const queued = await this.store.transitions({
      id,
      from: 'filed',
      moves: [approved, { patch: { verdict }, event: { actor: SYSTEM, kind: 'gate-pass', detail: { verdict } } }],
      now: this.now(),
    });
    this.metrics.transitions.inc({ to: 'queued' });
    this.queuedAt.set(id, performance.now());
    this.poke();
    return queued;
  }

  private async refuseOnClosedIssue(issue: string, what: string): Promise<void> {
    if ((await this.store.getIssue(issue))?.closedAt) {
      throw new FerryError('FERRY_ISSUE_CLOSED', `issue ${issue} is closed, so ${what} is not possible: a closed issue's migrations are cancelled and torn down`, { issue });
    }
  }

  // ── recovery actions ─────────────────────────────────────────────────────

  async act(id: string, action: RecoveryAction, reason: string, actor: Actor): Promise<MigrationRecord> {
    if (!reason.trim()) throw new FerryError('FERRY_INVALID_REQUEST', `${action} needs a reason: say why, for the migration's history`);
    const m = await this.store.requireMigration(id);
    if (m.state !== 'held') throw wrongState(m, action, 'held');
    await this.refuseOnClosedIssue(m.issue, action);
    const plan = planRecovery(action, {
      attempts: m.attempts,
      failedStep: m.failedStep ?? 0,
      checkpoint: m.checkpoint && m.checkpoint.step === (m.failedStep ?? 0) ? m.checkpoint.text : null,
      snapshotAt: m.snapshot?.at ?? null,
      hasWipeStep: m.request.wipe !== undefined,
      stepNames: m.request.steps.map((s) => s.name),
    });
    if (plan.action === 'accept-partial' || plan.action === 'abandon') return this.move(m, { actor: actor.name, kind: plan.action, reason });
    // Re-admission: the tenant's steady-state may have shrunk since the last attempt.
    const verdict = await runGate(this.store, this.gateLimits, m.tenant, m.peak, this.now());
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
    // After a wipe, the old checkpoint points into data that no longer exists: forget it.
    const patch = plan.action === 'wipe-and-retry' ? { next, verdict, checkpoint: null, progress: null } : { next, verdict };
    const queued = await this.move(m, { actor: actor.name, kind: action, reason, detail: { next } }, patch);
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
        if (!active) {
          // Between the scheduler's start and its supervision, or just ended: look again shortly.
          if (tries >= 200) throw new FerryError('FERRY_CONFLICT', `migration ${id} is running but this runner does not supervise it; retry in a moment`);
          await new Promise((r) => setTimeout(r, 25));
          continue;
        }
        active.cancel ??= { actor: actor.name, reason };
        if (active.jobRef) await this.substrate.stop(active.jobRef);
        await active.done;
        const after = await this.store.requireMigration(id);
        if (after.state === 'cancelled' || isTerminal(after.state)) return after;
        continue;
      }
      try {
        return await this.move(m, { actor: actor.name, kind: 'cancel', reason });
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
    return this.finishClosure(ref, actor);
  }

  /** Cancel what is not final on a closed issue (running attempts are stopped first), then tear down. */
  private async finishClosure(ref: string, actor: Actor): Promise<{ issue: string; cancelled: string[]; removed: RemovedArtifact[]; pending: PendingArtifact[] }> {
    const cancelled: string[] = [];
    for (const m of await this.store.listMigrations({ issue: ref })) {
      if (isTerminal(m.state)) continue;
      try {
        await this.cancel(m.id, actor, `issue ${ref} closed`);
        cancelled.push(m.id);
      } catch (err) {
        // Ended meanwhile (terminal): nothing to cancel. Anything else: teardown reports it pending.
        if (!(err instanceof FerryError && err.code === 'FERRY_WRONG_STATE')) this.log('warn', `closing ${ref}: cannot cancel ${m.id}: ${coerceError(err).message}`);
      }
    }
    const { removed, pending } = await this.teardownIssue(ref);
    return { issue: ref, cancelled, removed, pending };
  }

  private async teardownIssue(ref: string): Promise<{ removed: RemovedArtifact[]; pending: PendingArtifact[] }> {
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
    const queued = await this.store.listQueued();
    if (queued.length === 0) return;
    const holders = new Map<string, string>();
    for (const h of await this.store.listHolders()) holders.set(h.tenant, h.id);
    const inUse = await this.store.runningPeaks();
    const starts = decideStarts({
      queued: queued.map((m, seq) => ({ id: m.id, tenant: m.tenant, peak: m.peak, seq })),
      holders,
      inUse,
      capacity: this.capacity,
    });
    for (const id of starts) {
      if (this.stopped) return;
      const m = await this.store.getMigration(id);
      if (m?.state === 'queued') await this.startAttempt(m);
    }
  }

  private async startAttempt(m: MigrationRecord): Promise<void> {
    const now = this.now();
    const verdict = await runGate(this.store, this.gateLimits, m.tenant, m.peak, now);
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      // Never ran: rejected. Ran before: back to held with the gate's reasons, data as it is.
      if (m.attempts === 0) await this.move(m, { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } }, { verdict });
      else await this.move(m, { actor: SYSTEM, kind: 'refuse', reason: describeRejection(verdict), detail: { verdict } }, { verdict, heldCause: 'gate', heldDetail: describeRejection(verdict) });
      return;
    }
    const tenant = await this.tenantOf(m);
    const number = m.attempts + 1;
    const fromStep = m.next?.fromStep ?? 0;
    const logRef = join(this.opts.logsDir, m.id, `attempt-${number}.log`);
    const firstJob = this.substrate.jobRef(this.stepSpec(m, tenant, number, fromStep, fromStep, logRef));
    // Every artifact of the attempt's start is recorded with the start itself, before any exists.
    const artifacts: Array<{ kind: string; ref: string }> = [
      { kind: 'log', ref: logRef },
      { kind: 'scratch', ref: this.substrate.scratchRef(m.id) },
    ];
    const policy = m.request.snapshot;
    const snapshot = number === 1 && (policy === 'always' || (policy === 'auto' && (await this.substrate.tenantDataExists(tenant))));
    if (snapshot) artifacts.push({ kind: 'snapshot', ref: this.substrate.snapshotRef(m.id) });
    artifacts.push({ kind: 'job', ref: firstJob });
    let started: Awaited<ReturnType<Store['startAttempt']>>;
    try {
      started = await this.store.startAttempt({
        id: m.id,
        number,
        fromStep,
        logRef,
        limitsEnforced: this.substrate.limits().enforced,
        isolated: this.substrate.isolation().isolated,
        verdict,
        event: { actor: SYSTEM, reason: `attempt ${number} from step ${fromStep < 0 ? 'wipe' : fromStep + 1}`, detail: { verdict } },
        now,
        firstJob: { step: fromStep, ref: firstJob },
        artifacts,
      });
    } catch (err) {
      if (err instanceof FerryError && (err.code === 'FERRY_TENANT_BUSY' || err.code === 'FERRY_CONFLICT')) return;
      throw err;
    }
    this.metrics.transitions.inc({ to: 'running' });
    this.superviseAttempt(started.migration, { artifacts: started.artifacts, tenant });
  }

  // ── attempts ─────────────────────────────────────────────────────────────

  /** Supervise the running attempt of `m`: a fresh start (with its recorded artifacts), or a re-attach. */
  private superviseAttempt(m: MigrationRecord, fresh: FreshStart | null): void {
    if (this.active.has(m.id)) return;
    const entry: ActiveAttempt = { done: Promise.resolve(), cancel: null, jobRef: null, step: null, jobStarted: false };
    this.metrics.running.inc();
    const done = this.runAttempt(m, entry, fresh)
      .catch(async (err: unknown) => {
        // A stopped runner stops supervising; the next start re-attaches and records the outcome.
        if (this.stopped) return;
        // A failure of Ferry's own effects (disk, substrate) fails the attempt: held, never retried.
        const e = coerceError(err);
        this.log('error', `attempt of ${m.id} failed inside Ferry: ${e.message}`);
        // Nothing may run on a held migration: stop the job Ferry lost track of, and wait for it.
        if (entry.jobStarted && entry.jobRef) {
          const ref = entry.jobRef;
          await this.substrate.stop(ref).catch(() => undefined);
          await Promise.race([this.substrate.watch(ref, () => undefined), new Promise((r) => setTimeout(r, 30_000))]).catch(() => undefined);
        }
        await this.untilStored(`hold of ${m.id}`, async () => {
          const current = await this.store.getMigration(m.id);
          if (current?.state !== 'running') return;
          const step = entry.step ?? (await this.store.getAttempt(m.id, current.attempts))?.fromStep ?? 0;
          await this.finish(current, current.attempts, step, { exitCode: null, signal: null, cause: 'lost', detail: `Ferry could not run the step: ${e.message}` }, entry, false);
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

  private async tenantOf(m: MigrationRecord): Promise<Tenant> {
    const t = await this.store.getTenant(m.tenant);
    if (!t) throw new FerryError('FERRY_INTERNAL', `tenant ${m.tenant} disappeared`);
    return asTenant(t);
  }

  private stepSpec(m: MigrationRecord, tenant: Tenant, attempt: number, stepIndex: number, fromStep: number, logRef: string): StepSpec {
    const step = stepIndex < 0 ? { name: 'wipe', run: m.request.wipe ?? [], timeoutMs: undefined } : (m.request.steps[stepIndex] as Step);
    const env: Record<string, string> = {
      ...m.request.env,
      FERRY_MIGRATION_ID: m.id,
      FERRY_ATTEMPT: String(attempt),
      FERRY_STEP: step.name,
      FERRY_TENANT: m.tenant,
    };
    const checkpoint = m.next?.checkpoint ?? null;
    if (checkpoint !== null && stepIndex === fromStep) env.FERRY_CHECKPOINT = checkpoint;
    return {
      migrationId: m.id,
      issue: m.issue,
      tenant,
      attempt,
      stepIndex,
      stepName: step.name,
      argv: step.run,
      env,
      limits: m.peak,
      timeoutMs: step.timeoutMs,
      image: m.request.image,
      scratchRef: this.substrate.scratchRef(m.id),
      logPath: logRef,
    };
  }

  private async runAttempt(m: MigrationRecord, entry: ActiveAttempt, fresh: FreshStart | null): Promise<void> {
    const attempt = await this.store.getAttempt(m.id, m.attempts);
    if (!attempt) throw new FerryError('FERRY_INTERNAL', `migration ${m.id} is running without attempt ${m.attempts}`);
    const tenant = fresh?.tenant ?? (await this.tenantOf(m));
    const steps = m.request.steps;
    const plan: number[] = [];
    for (let i = attempt.fromStep; i < steps.length; i++) plan.push(i);

    let position = 0;
    if (!fresh) {
      if (attempt.step === null || attempt.jobRef === null) {
        return void (await this.finish(m, attempt.number, attempt.fromStep, { exitCode: null, signal: null, cause: 'lost', detail: 'lost: Ferry stopped while preparing the attempt, before its first step started' }, entry));
      }
      position = Math.max(0, plan.indexOf(attempt.step));
    }

    for (; position < plan.length; position++) {
      const stepIndex = plan[position] as number;
      const spec = this.stepSpec(m, tenant, attempt.number, stepIndex, attempt.fromStep, attempt.logRef);
      const ref = this.substrate.jobRef(spec);
      entry.jobRef = ref;
      entry.step = stepIndex;
      const reattached = !fresh && stepIndex === attempt.step;
      if (!reattached) {
        if (entry.cancel) return void (await this.finish(m, attempt.number, stepIndex, cancelledResult(), entry));
        // A stopped runner starts no further step; the next start re-attaches after the last one.
        if (this.stopped) return;
        const first = fresh !== null && position === 0;
        const phase = this.startStep(m, tenant, attempt, spec, ref, first ? fresh : null);
        this.starting.add(phase);
        try {
          await phase;
        } finally {
          this.starting.delete(phase);
        }
        entry.jobStarted = true;
        const queued = this.queuedAt.get(m.id);
        if (queued !== undefined) {
          this.metrics.queueToStart.observe((performance.now() - queued) / 1000);
          this.queuedAt.delete(m.id);
        }
        if (entry.cancel) await this.substrate.stop(ref);
      } else {
        entry.jobStarted = true;
      }
      const signals = new SignalSink(this.store, m.id, stepIndex, this.now, (msg) => this.log('warn', msg));
      const result = await noteFullDisk(await this.substrate.watch(ref, (line) => signals.line(line)), attempt.logRef);
      if (this.stopped) return;
      await this.untilStored(`checkpoint of ${m.id}`, () => signals.flush());
      entry.jobStarted = false;
      if (result.cause !== null) return void (await this.finish(m, attempt.number, stepIndex, entry.cancel ? cancelledResult(result) : result, entry));
      if (entry.cancel && position < plan.length - 1) return void (await this.finish(m, attempt.number, stepIndex, cancelledResult(result), entry));
    }
    await this.untilStored(`success of ${m.id}`, () => this.store.finishAttempt({
      id: m.id,
      number: attempt.number,
      attempt: { exitCode: 0, cause: null, detail: 'all steps succeeded' },
      patch: { next: null },
      event: { actor: SYSTEM, kind: 'succeed', reason: `attempt ${attempt.number}: all steps succeeded` },
      now: this.now(),
    }));
    this.metrics.transitions.inc({ to: 'succeeded' });
  }

  /**
   * Start one step's job. The first step of a fresh attempt first creates what the start recorded
   * (log, scratch, snapshot, restore); a later step records its job (intent) before starting it.
   * Either way the created marks go in one transaction after the job runs.
   */
  private async startStep(m: MigrationRecord, tenant: Tenant, attempt: AttemptRecord, spec: StepSpec, ref: string, fresh: FreshStart | null): Promise<void> {
    const created: number[] = [];
    let snapshotPatch: { id: string; patch: { snapshot: { ref: string; at: string } } } | undefined;
    if (fresh) {
      const byKind = new Map(fresh.artifacts.map((a) => [a.kind, a]));
      await appendLogLine(attempt.logRef, `── ferry: migration ${m.id}, attempt ${attempt.number}, tenant ${m.tenant}, limits ${this.substrate.limits().enforced ? 'enforced' : 'NOT enforced'} ──`);
      const scratch = byKind.get('scratch');
      if (scratch && scratch.state !== 'created') await this.substrate.createScratch(scratch.ref, { migrationId: m.id, issue: m.issue, tenant });
      const snapshot = byKind.get('snapshot');
      if (snapshot) {
        await this.substrate.snapshot(tenant, snapshot.ref, { migrationId: m.id, issue: m.issue });
        snapshotPatch = { id: m.id, patch: { snapshot: { ref: snapshot.ref, at: this.now().toISOString() } } };
        await appendLogLine(attempt.logRef, `── ferry: snapshot of the tenant data taken (${snapshot.ref}) ──`);
      }
      if (m.next?.restore === 'snapshot' && m.snapshot) {
        await appendLogLine(attempt.logRef, `── ferry: restoring the tenant data from the snapshot taken at ${m.snapshot.at} ──`);
        await this.substrate.restore(tenant, m.snapshot.ref);
      }
      for (const a of fresh.artifacts) if (a.state === 'intended') created.push(a.id);
    } else {
      const job = await this.store.beginStep({ migrationId: m.id, issue: m.issue, number: attempt.number, step: spec.stepIndex, ref, now: this.now() });
      created.push(job.id);
    }
    const steps = m.request.steps.length;
    await appendLogLine(attempt.logRef, `── ferry: attempt ${attempt.number}, step ${spec.stepIndex < 0 ? 'wipe' : `${spec.stepIndex + 1}/${steps}`} ${spec.stepName} ──`);
    await this.substrate.start(spec, ref);
    await this.store.markCreated(created, this.now(), snapshotPatch);
  }

  private async finish(m: MigrationRecord, number: number, stepIndex: number, result: StepResult, entry: ActiveAttempt, retry = true): Promise<void> {
    const cancelled = result.cause === 'cancelled' && entry.cancel !== null;
    const stepName = stepIndex < 0 ? 'wipe' : (m.request.steps[stepIndex]?.name ?? String(stepIndex));
    const where = `step ${stepIndex < 0 ? 'wipe' : stepIndex + 1} (${stepName})`;
    const record = () => this.store.finishAttempt({
      id: m.id,
      number,
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

  /**
   * Move `m` by a lifecycle event from the state it was read in: the transition table decides where
   * it leads (and refuses an illegal one), the store's compare-and-set that nobody moved it meanwhile.
   */
  private async move(m: MigrationRecord, event: TransitionEvent, patch: MigrationPatch = {}): Promise<MigrationRecord> {
    const next = await this.store.transition({ id: m.id, from: m.state, patch, event, now: this.now() });
    this.metrics.transitions.inc({ to: next.state });
    if (m.state === 'queued') this.queuedAt.delete(m.id);
    return next;
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
    const checkpoint = this.checkpoint;
    const progress = this.progress;
    if (checkpoint === null && progress === null) return;
    // Taken before the await: a line arriving during the write is kept for the next one.
    this.checkpoint = null;
    this.progress = null;
    try {
      await this.store.updateMigration(
        this.id,
        { ...(checkpoint === null ? {} : { checkpoint: { step: this.step, text: checkpoint } }), ...(progress === null ? {} : { progress }) },
        this.now(),
      );
    } catch (err) {
      // Not written: put back what no newer line replaced meanwhile.
      this.checkpoint ??= checkpoint;
      this.progress ??= progress;
      throw err;
    }
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
