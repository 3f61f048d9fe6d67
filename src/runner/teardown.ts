/**
 * Teardown (TR-43): closing an issue cancels what is not final on it, then removes every artifact
 * its migrations recorded, idempotently; what cannot go yet is pending and retried on the next
 * close or start. The orphan sweep removes labelled leftovers of closed issues.
 */
import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError, coerceError } from '../core/errors.ts';
import { isTerminal } from '../core/lifecycle.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { ArtifactKind } from '../substrates/substrate.ts';
import type { AttemptSupervisor } from './attempt-supervisor.ts';
import type { Actor, RunnerContext } from './runner-context.ts';

export interface RemovedArtifact {
  readonly migrationId: string;
  readonly kind: string;
  readonly ref: string;
}

export interface PendingArtifact extends RemovedArtifact {
  readonly error: string;
  /** The node it lives on; it removes it (when it is down: when it is back). */
  readonly node?: string | null;
}

export interface IssueClosure {
  issue: string;
  cancelled: string[];
  removed: RemovedArtifact[];
  pending: PendingArtifact[];
}

/** Order of removal on teardown: what uses an artifact goes before it. */
const TEARDOWN_ORDER = ['job', 'snapshot', 'scratch', 'log'];

export type CancelMigration = (id: string, actor: Actor, reason: string) => Promise<MigrationRecord>;

export class Teardown {
  private readonly ctx: RunnerContext;
  private readonly supervisor: AttemptSupervisor;
  private readonly cancel: CancelMigration;

  constructor(ctx: RunnerContext, supervisor: AttemptSupervisor, cancel: CancelMigration) {
    this.ctx = ctx;
    this.supervisor = supervisor;
    this.cancel = cancel;
  }

  /** Cancel what is not final on a closed issue (running attempts are stopped first), then tear down. */
  async finishClosure(ref: string, actor: Actor): Promise<IssueClosure> {
    const cancelled: string[] = [];
    for (const m of await this.ctx.store.listMigrations({ issue: ref })) {
      if (isTerminal(m.state)) continue;
      // A job running on another node is stopped by that node: it tears down its part on the notice.
      if (m.state === 'running' && !this.supervisor.has(m.id)) {
        const node = (await this.ctx.store.getAttempt(m.id, m.attempts))?.node;
        if (node && node !== this.ctx.nodeName) continue;
      }
      try {
        await this.cancel(m.id, actor, `issue ${ref} closed`);
        cancelled.push(m.id);
      } catch (err) {
        // Ended meanwhile (terminal): nothing to cancel. Anything else: teardown reports it pending.
        if (!(err instanceof FerryError && err.code === 'FERRY_WRONG_STATE'))
          this.ctx.log('warn', `closing ${ref}: cannot cancel ${m.id}: ${coerceError(err).message}`);
      }
    }
    const { removed, pending } = await this.teardownIssue(ref);
    return { issue: ref, cancelled, removed, pending };
  }

  private async teardownIssue(ref: string): Promise<{ removed: RemovedArtifact[]; pending: PendingArtifact[] }> {
    const { ctx } = this;
    const removed: RemovedArtifact[] = [];
    const pending: PendingArtifact[] = [];
    // Jobs first: their scratch and snapshot volumes cannot go while a container still uses them.
    const present = (await ctx.store.listArtifacts({ issue: ref, present: true })).sort(
      (a, b) => TEARDOWN_ORDER.indexOf(a.kind) - TEARDOWN_ORDER.indexOf(b.kind),
    );
    const nodes = new Map((await ctx.store.listNodes()).map((n) => [n.name, n]));
    for (const a of present) {
      // Every node removes its own: another node's are pending here until it has.
      if (a.node !== null && a.node !== ctx.nodeName) {
        const n = nodes.get(a.node);
        const where =
          n?.state === 'up' ? `on node ${a.node}, which removes it` : `on node ${a.node}, which is ${n?.state ?? 'unknown'}: removed when it is back`;
        pending.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref, node: a.node, error: where });
        continue;
      }
      if (this.supervisor.has(a.migrationId)) {
        pending.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref, error: 'its attempt is still stopping' });
        continue;
      }
      try {
        await ctx.substrate.remove(a.kind as ArtifactKind, a.ref);
        // The migration's log folder is the runner's: gone with its last log.
        if (a.kind === 'log') await rmdir(dirname(a.ref)).catch(() => undefined);
      } catch (err) {
        // Keep going: one stubborn artifact must not keep the others. The next start retries it.
        pending.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref, error: coerceError(err).message });
        continue;
      }
      await ctx.store.markArtifact(a.id, 'removed', ctx.now());
      ctx.metrics.artifactsRemoved.inc({ kind: a.kind });
      removed.push({ migrationId: a.migrationId, kind: a.kind, ref: a.ref });
    }
    const here = pending.filter((p) => !p.node || p.node === ctx.nodeName);
    // Done when no node has any left; whichever node removes the last one marks it.
    await ctx.store.markTeardownDoneIfClear(ref, ctx.now());
    if (here.length > 0) ctx.log('warn', `issue ${ref}: ${here.length} artifact(s) not removed yet; retried on the next close or start`, { pending: here });
    return { removed, pending };
  }

  /**
   * Orphan sweep: objects on the substrate carrying Ferry's labels whose issue is closed (e.g. made
   * by a step that started just before a crash, after its artifact was recorded as removed). Objects
   * of issues this store does not know are left alone: they may belong to another Ferry.
   */
  async sweepOrphans(): Promise<void> {
    const { ctx } = this;
    let objects;
    try {
      objects = await ctx.substrate.listLabelled();
    } catch (err) {
      ctx.log('warn', `orphan sweep skipped: ${coerceError(err).message}`);
      return;
    }
    const closed = new Map<string, boolean>();
    for (const o of objects) {
      if (!closed.has(o.issue)) closed.set(o.issue, Boolean((await ctx.store.getIssue(o.issue))?.closedAt));
      if (!closed.get(o.issue)) continue;
      try {
        await ctx.substrate.remove(o.kind, o.ref);
        ctx.metrics.artifactsRemoved.inc({ kind: o.kind });
        ctx.log('info', `orphan sweep removed ${o.kind} ${o.ref} of closed issue ${o.issue}`);
      } catch (err) {
        ctx.log('warn', `orphan sweep could not remove ${o.kind} ${o.ref}: ${coerceError(err).message}`);
      }
    }
  }
}
