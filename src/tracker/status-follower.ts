/**
 * The thread following its migrations: one status comment per migration, re-rendered from the
 * current record on every committed transition (Store.onTransition) and edited in place; a new
 * comment only when operators must act (a hold). After a restart, `catchUp()` queues what a crash
 * between a commit and the outbox may have lost.
 */
import { coerceError } from '../core/errors.ts';
import { parseIssueRef, type TrackerKind } from '../core/issue-ref.ts';
import { isTerminal } from '../core/lifecycle.ts';
import type { MigrationState } from '../core/types.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { EventInput, Store } from '../store/store.ts';
import type { TrackerClient } from './clients.ts';
import { renderStatusComment } from './comments.ts';
import type { LogFn } from '../core/log.ts';
import type { OutboxSender } from './outbox.ts';
import { renderHeldNotice } from './replies.ts';
import { statusView } from './thread-status.ts';
import type { TrackersConfig } from './tracker-config.ts';
import { stepName } from '../core/steps.ts';

export interface StatusFollowerOptions {
  readonly store: Store;
  readonly config: TrackersConfig;
  /** Clients of the trackers Ferry may write to; migrations of other trackers are not followed. */
  readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  /** Poked after a comment is queued. */
  readonly outbox: OutboxSender;
  readonly now: () => Date;
  readonly log: LogFn;
}

export class StatusFollower {
  private readonly store: Store;
  private readonly config: TrackersConfig;
  private readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  private readonly outbox: OutboxSender;
  private readonly now: () => Date;
  private readonly log: LogFn;
  private readonly statusChains = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private unsubscribe: (() => void) | null = null;
  private stopped = true;

  constructor(opts: StatusFollowerOptions) {
    this.store = opts.store;
    this.config = opts.config;
    this.clients = opts.clients;
    this.outbox = opts.outbox;
    this.now = opts.now;
    this.log = opts.log;
  }

  /** Follow committed transitions, then catch up on what a crash may have left unqueued. */
  async start(): Promise<void> {
    this.stopped = false;
    this.unsubscribe = this.store.onTransition((m, from, event) => this.onTransition(m, from, event));
    await this.catchUp();
  }

  /** Stop following; waits for the refreshes in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private onTransition(m: MigrationRecord, _from: MigrationState, _event: EventInput): void {
    if (this.stopped || this.clients[trackerOf(m.issue)] === undefined) return;
    this.refresh(m.id);
    if (m.state === 'held') this.track(this.heldNotice(m));
    // Migrations queued behind this one show its state in their "waiting" line.
    this.track(
      this.store.listMigrations({ tenant: m.tenant, state: ['queued'] }).then((queued) => {
        for (const other of queued) if (other.id !== m.id) this.refresh(other.id);
      }),
    );
  }

  /** Re-render a migration's status comment from its current record; serialised per migration. */
  private refresh(id: string): void {
    const previous = this.statusChains.get(id) ?? Promise.resolve();
    const next = previous
      .then(() => this.enqueueStatusOf(id))
      .catch((err: unknown) => this.log('error', `status comment of ${id}: ${coerceError(err).message}`));
    this.statusChains.set(id, next);
    this.track(
      next.then(() => {
        if (this.statusChains.get(id) === next) this.statusChains.delete(id);
      }),
    );
  }

  private async enqueueStatusOf(id: string): Promise<void> {
    if (this.stopped) return;
    const m = await this.store.getMigration(id);
    // While filed, the verdict comment speaks for it; the status comment starts with the approval.
    if (m === null || m.state === 'filed') return;
    const tracker = trackerOf(m.issue);
    if (this.clients[tracker] === undefined) return;
    // Ended without ever being approved (replaced by an edit, cancelled, closed): no status comment to start.
    if (isTerminal(m.state) && (await this.store.threads.lastStatusBody(m.id)) === null) {
      const events = await this.store.listEvents(m.id);
      if (!events.some((e) => e.from === 'filed' && e.to === 'approved')) return;
    }
    const body = renderStatusComment(await statusView(this.store, m, this.config.trackers));
    await this.store.threads.enqueueStatus({ tracker, issue: m.issue, migrationId: m.id, body }, this.now());
    this.outbox.poke();
  }

  private async heldNotice(m: MigrationRecord): Promise<void> {
    const tracker = trackerOf(m.issue);
    const roles = this.config.trackers[tracker].roles;
    const failedStep = m.failedStep ?? 0;
    const body = renderHeldNotice({
      migrationId: m.id,
      tenant: m.tenant,
      attempt: m.attempts,
      cause: m.heldCause ?? 'lost',
      failedStep,
      stepName: stepName(m.request, failedStep),
      operators: roles.operators.length > 0 ? roles.operators : roles.admins,
    });
    // Once per hold: the key survives restarts, so catching up never asks twice.
    await this.store.threads.enqueueComment(
      { tracker, issue: m.issue, body, migrationId: m.id, dedupeKey: `held:${m.id}:${m.attempts}:${m.heldCause ?? ''}` },
      this.now(),
    );
    this.outbox.poke();
  }

  /**
   * After a restart: a transition committed just before a crash may not have reached the outbox.
   * Re-render the status of every open migration (and of ended ones that have a status comment) and
   * enqueue it when it differs from the last body enqueued; ask for held migrations again (deduplicated).
   */
  private async catchUp(): Promise<void> {
    for (const m of await this.store.listMigrations()) {
      if (m.state === 'filed' || this.clients[trackerOf(m.issue)] === undefined) continue;
      const last = await this.store.threads.lastStatusBody(m.id);
      if (isTerminal(m.state) && last === null) continue;
      const body = renderStatusComment(await statusView(this.store, m, this.config.trackers));
      if (body !== last) await this.store.threads.enqueueStatus({ tracker: trackerOf(m.issue), issue: m.issue, migrationId: m.id, body }, this.now());
      if (m.state === 'held') await this.heldNotice(m);
    }
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.log('error', `issue threads: ${coerceError(err).message}`));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }
}

function trackerOf(issue: string): TrackerKind {
  return parseIssueRef(issue).tracker;
}
