/**
 * The runner: turns core decisions into effects. Its façade (this file) files and approves
 * migrations, runs the gate, applies operators' recovery actions, cancels, and closes issues; the
 * scheduler loop starts attempts (scheduler-loop.ts), the attempt supervisor runs them step by step
 * through the substrate and records their outcomes (attempt-supervisor.ts), and teardown removes a
 * closed issue's artifacts (teardown.ts).
 *
 * Its own lifecycle is explicit: start() re-attaches to attempts that ran while it was away and
 * finishes interrupted teardowns; stop() stops scheduling and watching but never stops a job.
 */
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describeRejection } from '../core/admission.ts';
import { FerryError } from '../core/errors.ts';
import { isTerminal } from '../core/lifecycle.ts';
import { heldFactsOf, planRecovery } from '../core/recovery.ts';
import { parseMigrationRequest, parseTenantInput } from '../core/request-schema.ts';
import { WIPE_STEP } from '../core/steps.ts';
import { folderDataProblem, volumeDataProblem } from '../core/tenant-data.ts';
import type { IssueDefaults } from '../core/issue-ref.ts';
import type { RecoveryAction, Resources, Verdict } from '../core/types.ts';
import type { MigrationRecord, NodeLease, TenantHome, TenantRecord } from '../store/records.ts';
import type { Notice } from '../store/notices.ts';
import type { MigrationPatch, Store, TransitionEvent } from '../store/store.ts';
import type { Substrate } from '../substrates/substrate.ts';
import { AttemptSupervisor } from './attempt-supervisor.ts';
import { diskFull } from './disk.ts';
import { RejectedError, tenantError, wrongState } from './errors.ts';
import { runGate, type GateLimits } from './gate.ts';
import { RunnerMetrics } from './metrics.ts';
import { NodeMembership } from './node-membership.ts';
import { LateOutcomes } from './late-outcomes.ts';
import type { LogFn } from '../core/log.ts';
import { newMigrationIdText } from '../core/migration-id.ts';
import { SYSTEM, type Actor, type RunnerContext } from './runner-context.ts';
import { SchedulerLoop } from './scheduler-loop.ts';
import { Teardown, type IssueClosure } from './teardown.ts';
import { asTenant } from './tenant-view.ts';

export { RejectedError } from './errors.ts';
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
  private readonly membership: NodeMembership;
  private readonly late: LateOutcomes;
  private readonly blockedTenants = new Set<string>();
  private readonly adopting = new Set<string>();
  private rejoining: Promise<void> | null = null;
  private readonly outboxListeners = new Set<() => void>();
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
      onFenced: () => this.onFenced(),
      onTaken: (err) => {
        this.log('error', err.message);
        if (opts.onNodeTaken) opts.onNodeTaken(err);
        else void this.stop();
      },
      onNotice: (notice) => this.onNotice(notice),
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
      onFenced: () => this.onFenced(),
      blockedTenants: this.blockedTenants,
      adopting: this.adopting,
    };
    this.attempts = new AttemptSupervisor(ctx);
    this.late = new LateOutcomes(ctx, this.blockedTenants);
    this.scheduler = new SchedulerLoop(ctx, this.attempts);
    this.teardown = new Teardown(ctx, this.attempts, (id, actor, reason) => this.cancel(id, actor, reason));
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

  /** The gate's limits for a tenant on `node`: this node's own, or what that node registered. */
  private readonly limitsOf = async (node: string | null): Promise<GateLimits> => {
    if (node === null || node === this.nodeName) return this.gateLimits;
    const other = await this.store.getNode(node);
    return other ? { capacity: other.capacity, enforced: other.enforced } : this.gateLimits;
  };

  private lease(): NodeLease {
    try {
      return this.membership.lease;
    } catch {
      throw new FerryError('FERRY_FENCED', `node ${this.nodeName} holds no lease now (it is joining the cluster again)`, { node: this.nodeName });
    }
  }

  /** Be told when any node enqueued a tracker comment (the outbox sender wakes). */
  onOutboxNotice(listener: () => void): () => void {
    this.outboxListeners.add(listener);
    return () => this.outboxListeners.delete(listener);
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
    // Tenants registered before identities existed get one now, and their data with it.
    for (const id of await this.store.assignMissingIdentities(this.opts.uidRange, this.now())) {
      const tenant = await this.store.getTenant(id);
      const handedOver = tenant && tenant.node === this.nodeName ? await this.substrate.adoptTenantData(asTenant(tenant)) : null;
      this.log('info', `tenant ${id} has no identity yet: gave it uid ${tenant?.runAs?.uid}${handedOver ? `; ${handedOver}` : ''}`);
    }
    await this.reattach();
    this.scheduler.start(this.opts.tickMs ?? 1000);
  }

  /**
   * Pick up this node's work after a start or a rejoin: re-attach to the attempts it runs, watch
   * the jobs of its attempts another node took over, and finish closures.
   */
  private async reattach(): Promise<void> {
    // Re-attach to attempts that ran while we were away first: a teardown a crash interrupted may
    // have to stop one of them (cancel, with its grace), not find it unwatched and hold it `lost`.
    for (const r of await this.store.listRunning(this.nodeName)) {
      const m = await this.store.getMigration(r.id);
      if (m?.state === 'running') this.attempts.supervise(m, null);
    }
    for (const a of await this.store.listTakenOverAttempts(this.nodeName)) await this.late.watch(a);
    for (const issue of await this.store.issuesPendingTeardown()) await this.teardown.finishClosure(issue, { name: SYSTEM });
    await this.teardown.sweepOrphans();
  }

  /** Stop scheduling and watching. Running jobs keep running; the next start() re-attaches. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.rejoining;
    await this.scheduler.stop();
    await this.attempts.stop();
    await this.late.stop();
    await this.membership.stop(true);
  }

  /**
   * The store refused a write as fenced, or the lease was found taken over: another node held this
   * node's running migrations `lost`. Stop acting on them (their jobs keep running), register again
   * with a new epoch, and pick up as after a restart: the jobs of taken-over attempts are watched and
   * their real outcomes recorded as events; nothing is re-run.
   */
  private onFenced(): void {
    if (this.stopped || this.rejoining) return;
    this.rejoining = this.rejoin().finally(() => (this.rejoining = null));
  }

  private async rejoin(): Promise<void> {
    this.membership.suspend();
    await this.scheduler.stop();
    await this.attempts.stop();
    for (let delay = 500; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.membership.join(this.substrate, this.capacity, this.tenantHome);
        await this.reattach();
        this.scheduler.start(this.opts.tickMs ?? 1000);
        this.log('info', `node ${this.nodeName} joined the cluster again`);
        return;
      } catch (err) {
        if (err instanceof FerryError && err.code === 'FERRY_NODE_TAKEN') {
          this.log('error', err.message);
          return;
        }
        this.log('warn', `node ${this.nodeName} cannot join the cluster again yet (retrying in ${delay} ms): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** A notice from another node (or this one): act on it now rather than at the next pass. */
  private onNotice(notice: Notice | { readonly t: 'reconnected' }): void {
    if (this.stopped) return;
    const close = (issue: string) =>
      this.teardown.finishClosure(issue, { name: SYSTEM }).catch((err: unknown) => this.log('warn', `closing ${issue}: ${(err as Error).message}`));
    if (notice.t === 'closed') void close(notice.issue);
    if (notice.t === 'moved') void this.store.noticeMoved(notice.id, notice.origin).catch(() => undefined);
    if (notice.t === 'outbox' || notice.t === 'reconnected') for (const listener of this.outboxListeners) listener();
    // Notices sent while the session was away are lost: look for closures this node has a part in.
    if (notice.t === 'reconnected') void this.store.issuesPendingTeardown().then((issues) => Promise.all(issues.map(close)));
    this.poke();
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
  async putTenant(id: string, body: unknown): Promise<{ tenant: TenantRecord; created: boolean; handedOver: string | null }> {
    const input = parseTenantInput(body);
    const node = input.node ?? (await this.store.getTenant(id))?.node ?? this.nodeName;
    // The data lives on the tenant's node: its default place and what it must not overlap are that node's.
    const home = node === this.nodeName ? this.tenantHome : (await this.store.getNode(node))?.tenantHome;
    if (!home) {
      const known = (await this.store.listNodes()).map((n) => n.name).join(', ');
      throw tenantError('node', `there is no node ${node}; the nodes are: ${known}. A node exists once it has started`);
    }
    const folders = home.substrate === 'process';
    const defaultData = folders && home.tenantsDir ? join(home.tenantsDir, id) : `ferry-tenant-${id}`;
    const data = input.data ?? defaultData;
    // Tenants on other nodes are on other hosts: only those on the same node may not overlap.
    const others = (await this.store.listTenants()).filter((t) => t.id !== id && (t.node ?? node) === node);
    const context = { tenantId: id, defaultData, ferryPaths: home.ferryPaths, others };
    const problem = folders ? folderDataProblem(data, context) : volumeDataProblem(data, context);
    if (problem) throw tenantError('data', problem);
    if (input.allowRoot && folders) throw tenantError('allowRoot', 'process jobs never run as root; allowRoot is for the container substrate');
    if (input.placement !== undefined && home.substrate !== 'swarm') {
      throw tenantError('placement', `placement is for the swarm substrate; node ${node} runs jobs on the ${home.substrate} substrate, on its own host`);
    }
    const ownUid = process.getuid?.();
    if (input.runAs && input.runAs.uid === ownUid) throw tenantError('runAs.uid', `uid ${ownUid} is Ferry's own; give the tenant an identity of its own`);
    this.adopting.add(id);
    try {
      return await this.registerTenant(id, input, node, data);
    } finally {
      this.adopting.delete(id);
    }
  }

  private async registerTenant(
    id: string,
    input: ReturnType<typeof parseTenantInput>,
    node: string,
    data: string,
  ): Promise<{ tenant: TenantRecord; created: boolean; handedOver: string | null }> {
    const result = await this.store.putTenant(
      id,
      { steadyState: input.steadyState, data, runAs: input.runAs ?? null, allowRoot: input.allowRoot ?? false, node, placement: input.placement ?? null },
      this.opts.uidRange,
      this.now(),
    );
    // The data is on the tenant's node: this node hands it over if it is that node; else that node does, before its first start.
    let handedOver: string | null = null;
    if (node === this.nodeName) {
      handedOver = await this.substrate.adoptTenantData(asTenant(result.tenant));
      await this.store.markTenantAdopted(id, result.tenant.updatedAt, this.now());
      if (handedOver) this.log('info', `tenant ${id}: ${handedOver}`);
    }
    this.poke();
    return { tenant: result.tenant, created: result.created, handedOver };
  }

  // ── filing ───────────────────────────────────────────────────────────────

  /** Filing-time verdict; changes nothing. Throws FERRY_INVALID_REQUEST for a bad document. */
  async check(document: unknown): Promise<Verdict> {
    const request = parseMigrationRequest(document, this.opts.issueDefaults);
    const verdict = await runGate(this.store, this.limitsOf, request.tenant, request.peak, this.now());
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
    const verdict = await runGate(this.store, this.limitsOf, request.tenant, request.peak, this.now());
    if (!verdict.ok) {
      for (const r of verdict.reasons) this.metrics.rejections.inc({ where: 'filing', code: r.code });
      throw new RejectedError(verdict, null);
    }
    const id = newMigrationIdText(Date.now(), randomBytes(4).toString('hex'));
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
    const verdict = await runGate(this.store, this.limitsOf, m.tenant, m.peak, this.now());
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
      throw new FerryError(
        'FERRY_ISSUE_CLOSED',
        `issue ${issue} is closed, so ${what} is not possible: a closed issue's migrations are cancelled and torn down`,
        { issue },
      );
    }
  }

  // ── recovery actions ─────────────────────────────────────────────────────

  async act(id: string, action: RecoveryAction, reason: string, actor: Actor): Promise<MigrationRecord> {
    if (!reason.trim()) throw new FerryError('FERRY_INVALID_REQUEST', `${action} needs a reason: say why, for the migration's history`);
    const m = await this.store.requireMigration(id);
    if (m.state !== 'held') throw wrongState(m, action, 'held');
    await this.refuseOnClosedIssue(m.issue, action);
    const lastStep = m.failedStep === null && m.attempts > 0 ? ((await this.store.getAttempt(m.id, m.attempts))?.step ?? null) : null;
    const plan = planRecovery(action, heldFactsOf(m, lastStep));
    if (plan.action === 'accept-partial' || plan.action === 'abandon') return this.move(m, { actor: actor.name, kind: plan.action, reason });
    // Re-admission: the tenant's steady-state may have shrunk since the last attempt.
    const verdict = await runGate(this.store, this.limitsOf, m.tenant, m.peak, this.now());
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
  async cancel(id: string, actor: Actor, reason: string): Promise<MigrationRecord> {
    for (let tries = 0; ; tries++) {
      const m = await this.store.requireMigration(id);
      if (isTerminal(m.state)) throw wrongState(m, 'cancel', 'filed, approved, queued, running or held');
      if (m.state === 'running') {
        const active = this.attempts.get(id);
        const owner = active ? this.nodeName : (await this.store.getAttempt(m.id, m.attempts))?.node;
        if (owner && owner !== this.nodeName) {
          throw new FerryError(
            'FERRY_CONFLICT',
            `migration ${id} is running on node ${owner}: only that node can stop its job; cancel it through node ${owner}'s API`,
            { id, node: owner },
          );
        }
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
