/**
 * Deliveries in: a verified tracker event becomes a filing, a command or a closure, and the
 * comments it causes are queued in the outbox.
 *
 * Which migration a command addresses: the thread's latest migration that is not terminal (by
 * filing time). A thread normally has one; a second one exists only after the first ended or was
 * replaced, so "the latest open one" is the one people are talking about. With none open, commands
 * are refused with a reply saying so (`status` then reports the latest migration).
 *
 * Delivery ids are recorded in the same transaction as the comments the delivery causes, after its
 * effects on migrations (which the runner commits in its own transactions). A crash in between
 * leaves the effect applied and the id unrecorded; a redelivery then meets the runner's state
 * guards (approve of a queued migration, an identical request already filed) and changes nothing.
 */
import { FerryError } from '../core/errors.ts';
import type { TrackerKind } from '../core/issue-ref.ts';
import { isTerminal } from '../core/lifecycle.ts';
import { parseMigrationRequest } from '../core/request-schema.ts';
import type { MigrationRequest, MigrationState } from '../core/types.ts';
import { RejectedError, type Runner } from '../runner/runner.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';
import type { NewComment } from '../store/thread-records.ts';
import type { TrackerClient } from './clients.ts';
import { authorise, parseCommandComment, requiredRole, type FerryCommand } from './commands.ts';
import { renderClosureSummary, renderCommandRefusal, renderVerdictComment } from './comments.ts';
import type { OutboxSender } from './outbox.ts';
import { renderInvalidRequest, renderStatusReply, renderThreadNote } from './replies.ts';
import { findRequestBlock, readRequestBlock } from './request-block.ts';
import { parseThreadEventBody, type ThreadEvent } from './thread-events.ts';
import type { TrackersConfig } from './tracker-config.ts';
import { verifyDelivery, type DeliveryHeaders } from './webhook-verify.ts';

export interface DeliveryAck {
  readonly ok: true;
  readonly delivery: string;
  /** applied: acted on; duplicate: this delivery id was applied before; ignored: nothing for Ferry. */
  readonly outcome: 'applied' | 'duplicate' | 'ignored';
}

/** Receives verified-or-not deliveries; src/api/webhook-routes.ts calls it with the raw body. */
export interface DeliveryHandler {
  handleDelivery(tracker: TrackerKind, headers: DeliveryHeaders, rawBody: Buffer): Promise<DeliveryAck>;
}

export interface ThreadDeliveryHandlerOptions {
  readonly store: Store;
  readonly runner: Runner;
  readonly config: TrackersConfig;
  /** Clients of the trackers Ferry may write to; without one, effects apply and no comment is queued. */
  readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  /** Poked after comments are queued. */
  readonly outbox: OutboxSender;
  readonly now: () => Date;
}

/** Terminal states after which the same request may be filed again (nothing was decided about its data). */
const REFILE_AFTER: ReadonlySet<MigrationState> = new Set(['rejected', 'cancelled']);

export class ThreadDeliveryHandler implements DeliveryHandler {
  private readonly store: Store;
  private readonly runner: Runner;
  private readonly config: TrackersConfig;
  private readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  private readonly outbox: OutboxSender;
  private readonly now: () => Date;
  private readonly threadLocks = new Map<string, Promise<unknown>>();

  constructor(opts: ThreadDeliveryHandlerOptions) {
    this.store = opts.store;
    this.runner = opts.runner;
    this.config = opts.config;
    this.clients = opts.clients;
    this.outbox = opts.outbox;
    this.now = opts.now;
  }

  async handleDelivery(tracker: TrackerKind, headers: DeliveryHeaders, rawBody: Buffer): Promise<DeliveryAck> {
    const settings = this.config.trackers[tracker];
    const verified = await verifyDelivery(tracker, headers, rawBody, settings.webhookSecret ?? undefined);
    if (!verified.ok) throw new FerryError(verified.code, verified.message, { reason: verified.reason });
    const { deliveryId } = verified;
    const records = this.store.threads;
    if (await records.deliverySeen(tracker, deliveryId)) return { ok: true, delivery: deliveryId, outcome: 'duplicate' };
    const event = parseThreadEventBody(tracker, verified.event, rawBody, { botUser: settings.botUser ?? undefined });
    if (event === null) {
      await records.recordDelivery(tracker, deliveryId, verified.event, this.now());
      return { ok: true, delivery: deliveryId, outcome: 'ignored' };
    }
    // One delivery per thread at a time: a comment and an edit of the same thread never interleave.
    return this.serialise(event.issue, async () => {
      if (await records.deliverySeen(tracker, deliveryId)) return { ok: true, delivery: deliveryId, outcome: 'duplicate' } as const;
      const comments = await this.apply(tracker, event);
      // False when another node applied it meanwhile: then nothing is queued twice.
      const fresh = await records.recordAppliedDelivery(
        { tracker, deliveryId, event: verified.event, thread: { issue: event.issue, url: event.url.replace(/#.*$/, '') }, comments },
        this.now(),
      );
      this.outbox.poke();
      return { ok: true, delivery: deliveryId, outcome: fresh ? 'applied' : 'duplicate' } as const;
    });
  }

  private async apply(tracker: TrackerKind, event: ThreadEvent): Promise<NewComment[]> {
    const closed = (await this.store.getIssue(event.issue))?.closedAt != null;
    switch (event.kind) {
      case 'issue-opened':
      case 'issue-edited':
        if (closed)
          return hasBlock(event.body)
            ? this.note(
                tracker,
                event,
                `this issue is closed, so Ferry ignores its request; reopening recreates nothing. Open a new issue to file a new migration.`,
              )
            : [];
        return this.fileFromThread(tracker, event);
      case 'issue-closed':
        return this.closeThread(tracker, event, closed);
      case 'issue-reopened': {
        const migrations = await this.store.listMigrations({ issue: event.issue });
        if (migrations.length === 0 || !closed) return [];
        return this.note(
          tracker,
          event,
          `this issue was closed, and reopening it recreates nothing: its migrations stay as they ended and their job artifacts stay removed. Ferry ignores further requests and commands here; open a new issue for a new migration.`,
        );
      }
      case 'comment':
        return this.command(tracker, event, closed);
    }
  }

  // ── filing ───────────────────────────────────────────────────────────────

  private async fileFromThread(tracker: TrackerKind, event: ThreadEvent): Promise<NewComment[]> {
    let block: boolean;
    try {
      block = findRequestBlock(event.body) !== null;
    } catch {
      block = true; // an unclosed ferry fence: the user meant a request; readRequestBlock says what is wrong
    }
    if (!block) return [];
    const actor = { name: `${tracker}:${event.author}` };
    const auth = authorise(event.author, 'filer', this.config.trackers[tracker].roles);
    if (!auth.ok) return this.note(tracker, event, `the request in this issue was not filed: ${auth.message}.`);

    let document: Record<string, unknown>;
    let request: MigrationRequest;
    try {
      document = readRequestBlock(event.body, event.issue) as Record<string, unknown>;
      request = parseMigrationRequest(document, this.runner.issueDefaults);
    } catch (err) {
      if (err instanceof FerryError && err.status < 500) return this.comment(tracker, event.issue, renderInvalidRequest(event.author, err.message));
      throw err;
    }

    const migrations = await this.store.listMigrations({ issue: event.issue });
    const current = latestOpen(migrations);
    const latest = migrations.at(-1);
    const out: NewComment[] = [];
    if (current !== undefined) {
      if (sameRequest(current.request, request)) return [];
      if (current.state !== 'filed') {
        return this.note(
          tracker,
          event,
          `migration \`${current.id}\` is already ${current.state}, so this edit does not change it: it runs the request as it was approved. To run the edited request, an operator cancels it with \`/ferry cancel\`; then save the issue again.`,
        );
      }
      // Not approved yet: the edited request replaces it, so an operator always approves what the issue shows.
      await this.runner.cancel(current.id, actor, 'the request in the issue was edited; the edited request replaces it');
      out.push(
        ...this.note(
          tracker,
          event,
          `migration \`${current.id}\` (filed, not approved yet) was cancelled because the request was edited; the edited request is checked below.`,
        ),
      );
    } else if (latest !== undefined && sameRequest(latest.request, request) && !REFILE_AFTER.has(latest.state)) {
      return []; // e.g. the title was edited after the migration succeeded: never run it again by accident
    }

    try {
      const m = await this.runner.file(document, actor);
      out.push(...this.comment(tracker, event.issue, renderVerdictComment(m.verdict, { migrationId: m.id })));
    } catch (err) {
      if (err instanceof RejectedError) out.push(...this.comment(tracker, event.issue, renderVerdictComment(err.verdict)));
      else if (err instanceof FerryError && err.status < 500) out.push(...this.comment(tracker, event.issue, renderInvalidRequest(event.author, err.message)));
      else throw err;
    }
    return out;
  }

  // ── closure ──────────────────────────────────────────────────────────────

  private async closeThread(tracker: TrackerKind, event: ThreadEvent, wasClosed: boolean): Promise<NewComment[]> {
    const before = await this.store.listMigrations({ issue: event.issue });
    const result = await this.runner.closeIssue(event.issue, { name: `${tracker}:${event.author}` });
    if (before.length === 0) return []; // not a Ferry thread: nothing to report
    if (wasClosed && result.cancelled.length === 0 && result.removed.length === 0) return [];
    // What the teardown could not remove yet (the runner retries it on the next close or start).
    const pending =
      'pending' in result && Array.isArray(result.pending)
        ? (result.pending as ReadonlyArray<{ migrationId: string; kind: string; ref: string; error: string }>)
        : (await this.store.listArtifacts({ issue: event.issue, present: true })).map((a) => ({
            migrationId: a.migrationId,
            kind: a.kind,
            ref: a.ref,
            error: `still ${a.state}`,
          }));
    const summary = renderClosureSummary({
      issue: event.issue,
      cancelled: result.cancelled.map((id) => ({ migrationId: id, from: before.find((m) => m.id === id)?.state ?? 'filed' })),
      removed: result.removed.map((a) => ({ migrationId: a.migrationId, kind: a.kind, name: a.ref })),
      pending: pending.map((a) => ({ migrationId: a.migrationId, kind: a.kind, name: a.ref, error: a.error })),
    });
    return this.comment(tracker, event.issue, summary);
  }

  // ── commands ─────────────────────────────────────────────────────────────

  private async command(tracker: TrackerKind, event: ThreadEvent, closed: boolean): Promise<NewComment[]> {
    const parsed = parseCommandComment(event.body);
    if (parsed === null) return [];
    if (closed)
      return this.note(
        tracker,
        event,
        'this issue is closed, so Ferry ignores commands in it (reopening recreates nothing). Open a new issue for a new migration.',
      );
    if (!parsed.ok) return this.refuse(tracker, event, parsed.error.line, parsed.error.message);
    const cmd = parsed.command;
    const auth = authorise(event.author, requiredRole(cmd), this.config.trackers[tracker].roles);
    if (!auth.ok) return this.refuse(tracker, event, cmd.line, auth.message);

    const actor = { name: `${tracker}:${event.author}` };
    const migrations = await this.store.listMigrations({ issue: event.issue });
    const target = latestOpen(migrations);
    if (target === undefined) {
      const latest = migrations.at(-1);
      if (cmd.name === 'status' && latest !== undefined) return this.comment(tracker, event.issue, this.statusReply(event.author, latest));
      const why =
        latest === undefined
          ? 'there is no migration in this thread; file one by putting a `ferry` block in the issue description'
          : `there is no open migration in this thread (the latest, \`${latest.id}\`, is ${latest.state}); commands address the thread's latest migration that has not ended`;
      return this.refuse(tracker, event, cmd.line, why);
    }
    try {
      await this.run(cmd, target, actor);
    } catch (err) {
      if (err instanceof RejectedError && cmd.name === 'approve') return this.note(tracker, event, err.message);
      if (err instanceof FerryError && err.status < 500) return this.refuse(tracker, event, cmd.line, err.message);
      throw err;
    }
    if (cmd.name === 'status') return this.comment(tracker, event.issue, this.statusReply(event.author, (await this.store.getMigration(target.id)) ?? target));
    return []; // the status comment shows the effect
  }

  private async run(cmd: FerryCommand, target: MigrationRecord, actor: { name: string }): Promise<void> {
    switch (cmd.name) {
      case 'approve':
        await this.runner.approve(target.id, actor);
        return;
      case 'cancel':
        await this.runner.cancel(target.id, actor, cmd.note ?? 'cancelled in the issue thread');
        return;
      case 'status':
        // Recorded like every command, with the tracker user as actor; changes no state.
        await this.store.appendEvent(target.id, target.state, { actor: actor.name, kind: 'status', reason: cmd.note }, this.now());
        return;
      default:
        await this.runner.act(target.id, cmd.name, cmd.reason, actor);
    }
  }

  private statusReply(author: string, m: MigrationRecord): string {
    const detail =
      m.state === 'held'
        ? 'It needs an operator: the status comment lists the four actions and what each would do.'
        : m.state === 'filed'
          ? 'It starts after an operator approves it with `/ferry approve`.'
          : null;
    return renderStatusReply({ author, migrationId: m.id, state: m.state, attempt: m.attempts, detail });
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  private comment(tracker: TrackerKind, issue: string, body: string): NewComment[] {
    // Without a token Ferry cannot write to this tracker; the effects still apply.
    return this.clients[tracker] === undefined ? [] : [{ tracker, issue, body }];
  }

  private note(tracker: TrackerKind, event: ThreadEvent, message: string): NewComment[] {
    return this.comment(tracker, event.issue, renderThreadNote(event.author, message));
  }

  private refuse(tracker: TrackerKind, event: ThreadEvent, line: string | null, message: string): NewComment[] {
    return this.comment(tracker, event.issue, renderCommandRefusal({ author: event.author, line, message }));
  }

  private serialise<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.threadLocks.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.threadLocks.set(key, tail);
    void tail.then(() => {
      if (this.threadLocks.get(key) === tail) this.threadLocks.delete(key);
    });
    return run;
  }
}

/** The thread's latest migration that is not terminal: the one a command addresses. */
function latestOpen(migrations: readonly MigrationRecord[]): MigrationRecord | undefined {
  return [...migrations].reverse().find((m) => !isTerminal(m.state));
}

function hasBlock(body: string): boolean {
  try {
    return findRequestBlock(body) !== null;
  } catch {
    return true;
  }
}

function sameRequest(a: MigrationRequest, b: MigrationRequest): boolean {
  return JSON.stringify(JSON.parse(JSON.stringify(a))) === JSON.stringify(JSON.parse(JSON.stringify(b)));
}
