/**
 * The runner: turns core decisions into effects. Its façade (this file) files and approves
 * migrations, runs the gate, applies operators' recovery actions, and closes issues. The work is
 * done by its parts: filing and approval run the gate (filing.ts) against the limits of the
 * tenant's node (node-limits.ts), the scheduler loop starts attempts (scheduler-loop.ts), the
 * attempt supervisor runs them step by step through the substrate and records their outcomes
 * (attempt-supervisor.ts), a cancel stops a running job first (cancellation.ts), teardown removes
 * a closed issue's artifacts (teardown.ts), tenant registration checks a tenant's data place and
 * hands its data over (tenant-registration.ts), the node's lease is node-membership.ts, and its
 * life in the cluster (re-attach, rejoin after being fenced, notices) is node-lifecycle.ts.
 *
 * Its own lifecycle is explicit: start() re-attaches to attempts that ran while it was away and
 * finishes interrupted teardowns; stop() stops scheduling and watching but never stops a job.
 */
import { mkdirSync } from 'node:fs';
import { describeRejection } from '../core/admission.ts';
import { FerryError } from '../core/errors.ts';
import { heldFactsOf, planRecovery } from '../core/recovery.ts';
import { WIPE_STEP } from '../core/steps.ts';
import type { IssueDefaults } from '../core/issue-ref.ts';
import type { RecoveryAction, Resources, Verdict } from '../core/types.ts';
import type { MigrationRecord, NodeLease, TenantHome } from '../store/records.ts';
import type { MigrationPatch, Store, TransitionEvent } from '../store/store.ts';
import type { Substrate } from '../substrates/substrate.ts';
import { AttemptSupervisor } from './attempt-supervisor.ts';
import { Cancellation } from './cancellation.ts';
import { diskFull } from './disk.ts';
import { RejectedError, wrongState } from './errors.ts';
import { Filing, type Admitted } from './filing.ts';
import { runGate, type GateLimits } from './gate.ts';
import { RunnerMetrics } from './metrics.ts';
import { NodeLifecycle } from './node-lifecycle.ts';
import { NodeMembership } from './node-membership.ts';
import { LateOutcomes } from './late-outcomes.ts';
import type { LogFn } from '../core/log.ts';
import { NodeLimits } from './node-limits.ts';
import type { Actor, RunnerContext } from './runner-context.ts';
import { SchedulerLoop } from './scheduler-loop.ts';
import { Teardown, type IssueClosure } from './teardown.ts';
import { TenantRegistration, type TenantRegistrationResult } from './tenant-registration.ts';

export { RejectedError } from './errors.ts';
export type { Admitted } from './filing.ts';
export type { Actor } from './runner-context.ts';
export type { PendingArtifact, RemovedArtifact } from './teardown.ts';

export interface RunnerOptions {
  readonly store: Store;
  readonly substrate: Substrate;
  /** Attempt logs live here: <logsDir>/<migration>/attempt-<n>.log */
  readonly logsDir: string;
  /** Default data folder of a tenant registered without `data` (process substrate). */
  readonly tenantsDir?: string | undefined;
  /** Paths of Ferry's own state that tenant data must not overlap (process substrate). Default none. */
  readonly ferryPaths?: readonly string[] | undefined;
  /** uids (and gids) given to tenants that name no runAs (config `uidRange`). */
  readonly uidRange: { readonly first: number; readonly last: number };
  /** What the scheduler may hand out at once; default: the substrate's capacity. */
  readonly capacity?: Resources | undefined;
  readonly issueDefaults?: IssueDefaults | undefined;
  readonly now?: () => Date;
  /** Safety-net scheduling interval; scheduling also runs on every change. Default 1000 ms. */
  readonly tickMs?: number;
  readonly log?: LogFn;
  /** This node's name (config `node`) and when a node that stopped renewing its lease is lost (config `nodeLostAfter`). */
  readonly node: { readonly name: string; readonly lostAfterMs: number };
  /** Another live process is this node: this one must stop (default: it stops its runner). */
  readonly onNodeTaken?: (err: FerryError) => void;
}

export class Runner {
  readonly store: Store;
  readonly substrate: Substrate;
  readonly metrics = new RunnerMetrics();
  private readonly opts: RunnerOptions;
  private readonly now: () => Date;
  private readonly queuedAt = new Map<string, number>();
  private readonly attempts: AttemptSupervisor;
  private readonly scheduler: SchedulerLoop;
  private readonly teardown: Teardown;
  private readonly cancellation: Cancellation;
  private readonly membership: NodeMembership;
  private readonly late: LateOutcomes;
  private readonly tenants: TenantRegistration;
  private readonly lifecycle: NodeLifecycle;
  private readonly filing: Filing;
  private readonly nodeLimits: NodeLimits;
  private readonly blockedTenants = new Set<string>();
  private readonly adopting = new Set<string>();
  private stopped = true;
  /** This node's name in the cluster. */
  readonly nodeName: string;

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.substrate = opts.substrate;
    this.nodeName = opts.node.name;
    this.now = opts.now ?? (() => new Date());
    this.membership = new NodeMembership({
      store: this.store,
      name: opts.node.name,
      lostAfterMs: opts.node.lostAfterMs,
      log: (...args) => this.log(...args),
      now: this.now,
      onFenced: () => this.lifecycle.onFenced(),
      onTaken: (err) => {
        this.log('error', err.message);
        if (opts.onNodeTaken) opts.onNodeTaken(err);
        else void this.stop();
      },
      onNotice: (notice) => this.lifecycle.onNotice(notice),
    });
    const ctx: RunnerContext = {
      store: this.store,
      substrate: this.substrate,
      metrics: this.metrics,
      now: this.now,
      log: (level, msg, fields) => this.log(level, msg, fields),
      logsDir: opts.logsDir,
      isStopped: () => this.stopped,
      gateLimits: () => this.gateLimits,
      queuedAt: this.queuedAt,
      move: (m, event, patch) => this.move(m, event, patch),
      poke: () => this.poke(),
      nodeName: opts.node.name,
      lease: () => this.lease(),
      canStart: () => this.membership.canStart(),
      onFenced: () => this.lifecycle.onFenced(),
      blockedTenants: this.blockedTenants,
      adopting: this.adopting,
    };
    this.attempts = new AttemptSupervisor(ctx);
    this.late = new LateOutcomes(ctx, this.blockedTenants);
    this.scheduler = new SchedulerLoop(ctx, this.attempts);
    this.cancellation = new Cancellation(ctx, this.attempts);
    this.teardown = new Teardown(ctx, this.attempts, (id, actor, reason) => this.cancel(id, actor, reason));
    this.nodeLimits = new NodeLimits({ store: this.store, self: opts.node.name, own: () => this.gateLimits });
    this.filing = new Filing(ctx, this.nodeLimits.of, opts.issueDefaults);
    this.tenants = new TenantRegistration(ctx, this.adopting, { uidRange: opts.uidRange, tenantHome: () => this.tenantHome });
    this.lifecycle = new NodeLifecycle(ctx, {
      membership: this.membership,
      attempts: this.attempts,
      scheduler: this.scheduler,
      late: this.late,
      teardown: this.teardown,
      capacity: () => this.capacity,
      tenantHome: () => this.tenantHome,
      tickMs: opts.tickMs ?? 1000,
    });
  }

  get issueDefaults(): IssueDefaults | undefined {
    return this.opts.issueDefaults;
  }

  /** Whether the disk holding Ferry's data folder is (nearly) full: less than 1 MiB left. */
  storageFull(): boolean {
    return diskFull(this.opts.logsDir);
  }

  get capacity(): Resources {
    return this.opts.capacity ?? this.substrate.capacity();
  }

  private get gateLimits(): GateLimits {
    return { capacity: this.capacity, enforced: this.substrate.limits().enforced ? this.substrate.enforcedDimensions() : null };
  }

  /** This node's rules for its tenants' data, registered for the other nodes' registrations. */
  private get tenantHome(): TenantHome {
    return { substrate: this.substrate.kind, tenantsDir: this.opts.tenantsDir ?? null, ferryPaths: this.opts.ferryPaths ?? [] };
  }

  private lease(): NodeLease {
    try {
      return this.membership.lease;
    } catch {
      throw new FerryError('FERRY_FENCED', `node ${this.nodeName} holds no lease now (it is joining the cluster again)`, { node: this.nodeName });
    }
  }

  /** Be told when any node enqueued a tracker comment (the outbox sender wakes). */
  onOutboxNotice(listener: () => void): () => void {
    return this.lifecycle.onOutboxNotice(listener);
  }

  /** Whether this node sends the cluster's tracker comments now (one node at a time). */
  outboxSender(): Promise<boolean> {
    return this.membership.outboxSender();
  }

  /** Record this node's API address, for the other nodes (forwarded logs and cancels). */
  setUrl(url: string): Promise<void> {
    return this.membership.setUrl(url);
  }

  private log(...args: Parameters<LogFn>): void {
    this.opts.log?.(...args);
  }

  // ── service lifecycle ────────────────────────────────────────────────────

  async start(): Promise<void> {
    mkdirSync(this.opts.logsDir, { recursive: true });
    const limits = this.substrate.limits();
    if (!limits.enforced) this.log('warn', `LIMITS NOT ENFORCED: ${limits.detail}`);
    const isolation = this.substrate.isolation();
    if (!isolation.isolated) this.log('warn', `JOBS NOT CONFINED: ${isolation.detail}`);
    // One live process per node name (FERRY_NODE_TAKEN), then a new lease epoch.
    await this.membership.join(this.substrate, this.capacity, this.tenantHome);
    // Renewing from now on: the start below (hand-overs, re-attach, closures) may take longer than nodeLostAfter.
    this.membership.startRenewing();
    this.stopped = false;
    await this.tenants.giveMissingIdentities();
    await this.lifecycle.reattach();
    this.scheduler.start(this.opts.tickMs ?? 1000);
  }

  /** Stop scheduling and watching. Running jobs keep running; the next start() re-attaches. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.lifecycle.rejoining;
    await this.scheduler.stop();
    await this.attempts.stop();
    await this.late.stop();
    await this.membership.stop(true);
  }

  /** Wait for every attempt this runner supervises to end (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.attempts.size > 0 || this.scheduler.pass) {
      await this.attempts.ended();
      await this.scheduler.pass;
    }
  }

  /** Ask for a scheduling pass soon. Passes never overlap. */
  poke(): void {
    this.scheduler.poke();
  }

  // ── tenants ──────────────────────────────────────────────────────────────

  /**
   * Register or update a tenant: its data place is checked (see core/tenant-data.ts), its identity
   * given, and its existing data handed over to that identity; the answer says what was handed over.
   */
  putTenant(id: string, body: unknown): Promise<TenantRegistrationResult> {
    return this.tenants.put(id, body);
  }

  // ── filing ───────────────────────────────────────────────────────────────

  /** Filing-time verdict; changes nothing. Throws FERRY_INVALID_REQUEST for a bad document. */
  check(document: unknown): Promise<Verdict> {
    return this.filing.check(document);
  }

  /** File a request: admitted → a new migration in `filed`; refused → RejectedError and nothing stored. */
  async file(document: unknown, actor: Actor): Promise<MigrationRecord> {
    return (await this.filing.file(document, actor)).migration;
  }

  /** file(), answering with the tenant the gate judged too (the API shows its node). */
  fileAdmitted(document: unknown, actor: Actor): Promise<Admitted> {
    return this.filing.file(document, actor);
  }

  /** filed → approved, then the gate: → queued, or → rejected with the gate's reasons. */
  async approve(id: string, actor: Actor): Promise<MigrationRecord> {
    return (await this.filing.approve(id, actor)).migration;
  }

  /** approve(), from the migration as the caller just read it (`seen`), answering with the tenant the gate judged too. */
  approveAdmitted(id: string, actor: Actor, seen?: MigrationRecord): Promise<Admitted> {
    return this.filing.approve(id, actor, seen);
  }

  // ── recovery actions ─────────────────────────────────────────────────────

  async act(id: string, action: RecoveryAction, reason: string, actor: Actor): Promise<MigrationRecord> {
    if (!reason.trim()) throw new FerryError('FERRY_INVALID_REQUEST', `${action} needs a reason: say why, for the migration's history`);
    const m = await this.store.requireMigration(id);
    if (m.state !== 'held') throw wrongState(m, action, 'held');
    await this.filing.refuseOnClosedIssue(m.issue, action);
    const lastStep = m.failedStep === null && m.attempts > 0 ? ((await this.store.getAttempt(m.id, m.attempts))?.step ?? null) : null;
    const plan = planRecovery(action, heldFactsOf(m, lastStep));
    if (plan.action === 'accept-partial' || plan.action === 'abandon') return this.move(m, { actor: actor.name, kind: plan.action, reason });
    // Re-admission: the tenant's steady-state may have shrunk since the last attempt.
    const { verdict } = await runGate(this.store, this.nodeLimits.of, m.tenant, m.peak, this.now());
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'gate', code: r.code });
      await this.store.appendEvent(
        m.id,
        'held',
        { actor: actor.name, kind: `${action}-refused`, reason: describeRejection(verdict), detail: { verdict } },
        this.now(),
      );
      throw new RejectedError(verdict, m.id, `${action} refused by the admission gate; the migration stays held: ${describeRejection(verdict)}`);
    }
    const next =
      plan.action === 'wipe-and-retry'
        ? { fromStep: plan.restore === 'wipe-step' ? WIPE_STEP : 0, checkpoint: null, restore: plan.restore }
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
  cancel(id: string, actor: Actor, reason: string): Promise<MigrationRecord> {
    return this.cancellation.cancel(id, actor, reason);
  }

  /** Close an issue: cancel what is not final, then deprovision every artifact. Idempotent. */
  async closeIssue(ref: string, actor: Actor): Promise<IssueClosure> {
    await this.store.markIssueClosed(ref, actor.name, this.now());
    return this.teardown.finishClosure(ref, actor);
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
