/**
 * The node's life in the cluster once it has joined: picking its work up after a start or a rejoin
 * (re-attach, late outcomes, interrupted closures), joining again with a new epoch after it was
 * fenced, and acting on the notices of the other nodes. The lease itself is node-membership.ts.
 */
import { FerryError } from '../core/errors.ts';
import type { Resources } from '../core/types.ts';
import type { Notice } from '../store/notices.ts';
import type { TenantHome } from '../store/records.ts';
import type { AttemptSupervisor } from './attempt-supervisor.ts';
import type { LateOutcomes } from './late-outcomes.ts';
import type { NodeMembership } from './node-membership.ts';
import { SYSTEM, type RunnerContext } from './runner-context.ts';
import type { SchedulerLoop } from './scheduler-loop.ts';
import type { Teardown } from './teardown.ts';

/** The runner's parts a rejoin stops and starts again, and what the node registers when it joins. */
export interface NodeLifecycleParts {
  readonly membership: NodeMembership;
  readonly attempts: AttemptSupervisor;
  readonly scheduler: SchedulerLoop;
  readonly late: LateOutcomes;
  readonly teardown: Teardown;
  /** What this node offers migrations now. */
  capacity(): Resources;
  /** This node's rules for its tenants' data. */
  tenantHome(): TenantHome;
  /** The scheduler's safety-net interval, in ms. */
  readonly tickMs: number;
}

export class NodeLifecycle {
  private readonly ctx: RunnerContext;
  private readonly parts: NodeLifecycleParts;
  private readonly outboxListeners = new Set<() => void>();
  private rejoiningNow: Promise<void> | null = null;

  constructor(ctx: RunnerContext, parts: NodeLifecycleParts) {
    this.ctx = ctx;
    this.parts = parts;
  }

  /** The rejoin under way, if any: stop() waits for it. */
  get rejoining(): Promise<void> | null {
    return this.rejoiningNow;
  }

  /** Be told when any node enqueued a tracker comment (the outbox sender wakes). */
  onOutboxNotice(listener: () => void): () => void {
    this.outboxListeners.add(listener);
    return () => this.outboxListeners.delete(listener);
  }

  /**
   * Pick up this node's work after a start or a rejoin: re-attach to the attempts it runs, watch
   * the jobs of its attempts another node took over, and finish closures.
   */
  async reattach(): Promise<void> {
    const { store, nodeName } = this.ctx;
    const { attempts, late, teardown } = this.parts;
    // Re-attach to attempts that ran while we were away first: a teardown a crash interrupted may
    // have to stop one of them (cancel, with its grace), not find it unwatched and hold it `lost`.
    for (const r of await store.listRunning(nodeName)) {
      const m = await store.getMigration(r.id);
      if (m?.state === 'running') attempts.supervise(m, null);
    }
    for (const a of await store.listTakenOverAttempts(nodeName)) await late.watch(a);
    for (const issue of await store.issuesPendingTeardown()) await teardown.finishClosure(issue, { name: SYSTEM });
    await teardown.sweepOrphans();
  }

  /**
   * The store refused a write as fenced, or the lease was found taken over: another node held this
   * node's running migrations `lost`. Stop acting on them (their jobs keep running), register again
   * with a new epoch, and pick up as after a restart: the jobs of taken-over attempts are watched and
   * their real outcomes recorded as events; nothing is re-run.
   */
  onFenced(): void {
    if (this.ctx.isStopped() || this.rejoiningNow) return;
    this.rejoiningNow = this.rejoin().finally(() => (this.rejoiningNow = null));
  }

  private async rejoin(): Promise<void> {
    const { membership, scheduler, attempts } = this.parts;
    const { nodeName, log } = this.ctx;
    membership.suspend();
    await scheduler.stop();
    await attempts.stop();
    for (let delay = 500; !this.ctx.isStopped(); delay = Math.min(delay * 2, 5000)) {
      try {
        await membership.join(this.ctx.substrate, this.parts.capacity(), this.parts.tenantHome());
        await this.reattach();
        scheduler.start(this.parts.tickMs);
        log('info', `node ${nodeName} joined the cluster again`);
        return;
      } catch (err) {
        if (err instanceof FerryError && err.code === 'FERRY_NODE_TAKEN') {
          log('error', err.message);
          return;
        }
        log('warn', `node ${nodeName} cannot join the cluster again yet (retrying in ${delay} ms): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** A notice from another node (or this one): act on it now rather than at the next pass. */
  onNotice(notice: Notice | { readonly t: 'reconnected' }): void {
    if (this.ctx.isStopped()) return;
    const { store, log } = this.ctx;
    const close = (issue: string) =>
      this.parts.teardown.finishClosure(issue, { name: SYSTEM }).catch((err: unknown) => log('warn', `closing ${issue}: ${(err as Error).message}`));
    // The node that closed the issue runs the closure itself, and answers with what it cancelled.
    if (notice.t === 'closed' && !store.isOwnNotice(notice.origin)) void close(notice.issue);
    if (notice.t === 'moved') {
      void store.noticeMoved(notice.id, notice.origin).catch(() => undefined);
      // Another node moved a migration of a tenant that lives on a third node: nothing for this
      // node's scheduler (what it starts, and what frees its tenants, are its own tenants' moves).
      if (!store.isOwnNotice(notice.origin) && typeof notice.node === 'string' && notice.node !== this.ctx.nodeName) return;
    }
    if (notice.t === 'outbox' || notice.t === 'reconnected') for (const listener of this.outboxListeners) listener();
    // Notices sent while the session was away are lost: look for closures this node has a part in.
    if (notice.t === 'reconnected') void store.issuesPendingTeardown().then((issues) => Promise.all(issues.map(close)));
    this.ctx.poke();
  }
}
