/**
 * The outbox sender: posts the comments queued in `tracker_outbox` through the tracker clients, in
 * the background, so a slow or unreachable tracker never blocks the runner or a webhook.
 *
 * Guarantees (see docs/issue-threads.md):
 * - Order per thread: a thread's rows go out oldest first; a row waiting for a retry holds back the
 *   later rows of the same thread (never those of other threads).
 * - Retryable failures (TrackerError.retryable) are retried with exponential backoff (honouring
 *   Retry-After) until `giveUpAfterMs`; permanent ones are given up at once. Both are recorded.
 * - A row is marked sent right after the tracker accepted it. A graceful stop waits for the send in
 *   flight, so stop/start never sends twice. Only a hard crash between the tracker's answer and that
 *   write can: the comment is then posted again after the restart (at least once, never lost).
 * - Status rows are coalesced (see ThreadRecords.enqueueStatus): the first send creates the comment and records
 *   its id, later ones edit it; only the latest body is sent.
 */
import { coerceError } from '../core/errors.ts';
import type { TrackerKind } from '../core/issue-ref.ts';
import type { OutboxRow, ThreadRecords } from '../store/thread-records.ts';
import { TrackerError, type TrackerClient } from './clients.ts';
import type { OutboxSettings } from './tracker-config.ts';
import type { LogFn } from '../core/log.ts';

export interface OutboxSenderOptions {
  /** The store's tracker tables (`store.threads`). */
  readonly records: ThreadRecords;
  /** Clients of the trackers Ferry may write to (those with a token). */
  readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  readonly settings: OutboxSettings;
  readonly now?: () => Date;
  readonly log?: LogFn;
  /** Safety-net poll for rows another node enqueued. Default 30000 ms. */
  readonly pollMs?: number;
  /** Whether this node is the cluster's sender now (one node sends, so each comment goes out once); default: always. */
  readonly isSender?: () => Promise<boolean>;
}

/** Sent and failed rows, and delivery ids, are kept this long (redeliveries come within days). */
const KEEP_MS = 30 * 86_400_000;

export class OutboxSender {
  private readonly opts: OutboxSenderOptions;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = true;

  constructor(opts: OutboxSenderOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.opts.records.prune(new Date(this.now().getTime() - KEEP_MS));
    await this.opts.records.makePendingDue(this.now());
    this.poke();
  }

  /** Stop sending; waits for the send in flight to be recorded. Pending rows stay for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.running) await this.running;
  }

  /** Look at the outbox soon. Passes never overlap. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.running = this.pass()
      .catch((err: unknown) => {
        this.opts.log?.('error', `tracker outbox: ${coerceError(err).message}`);
        this.schedule(this.now().getTime() + this.opts.settings.retryBaseMs);
      })
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.poke();
        }
      });
  }

  private schedule(at: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Math.min(at - this.now().getTime(), this.opts.pollMs ?? 30_000));
    this.timer = setTimeout(() => this.poke(), delay);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    // Another node sends: look again in a while, in case it stops.
    if (this.opts.isSender && !(await this.opts.isSender())) return this.schedule(this.now().getTime() + 5000);
    const rows = await this.opts.records.pendingRows();
    const threads = new Set<string>();
    let soonest = this.now().getTime() + (this.opts.pollMs ?? 30_000);
    let sent = false;
    for (const row of rows) {
      if (this.stopped) return;
      // Only the oldest pending row of each thread is eligible: comments keep their order.
      if (threads.has(row.issue)) continue;
      threads.add(row.issue);
      const due = Date.parse(row.nextAt);
      if (due > this.now().getTime()) {
        soonest = Math.min(soonest, due);
        continue;
      }
      await this.send(row);
      sent = true;
    }
    if (sent) this.again = true;
    else this.schedule(soonest);
  }

  private async send(row: OutboxRow): Promise<void> {
    const { records } = this.opts;
    const client = this.opts.clients[row.tracker];
    const attempts = row.attempts + 1;
    if (client === undefined) {
      await records.markFailed(row.id, attempts, `no API token is configured for ${row.tracker}; set trackers.${row.tracker}.token`, this.now());
      return;
    }
    if (this.now().getTime() - Date.parse(row.createdAt) > this.opts.settings.giveUpAfterMs) {
      await records.markFailed(row.id, row.attempts, `given up after ${row.attempts} attempts: ${row.lastError ?? 'no answer'}`, this.now());
      this.opts.log?.('warn', `tracker outbox: gave up on a comment for ${row.issue}`, { id: row.id, error: row.lastError });
      return;
    }
    let commentId: string | null = null;
    try {
      if (row.kind === 'status' && row.migrationId !== null) {
        commentId = await records.statusCommentId(row.migrationId);
        if (commentId !== null) {
          await client.updateComment(row.issue, commentId, row.body);
          await records.markSent(row.id, row.version, commentId, this.now());
        } else {
          const created = await client.createComment(row.issue, row.body);
          // The comment id is recorded with the mark, in one transaction: a newer body then edits it.
          await records.markStatusCommentCreated({ ...row, migrationId: row.migrationId }, created.id, this.now());
        }
      } else {
        const created = await client.createComment(row.issue, row.body);
        await records.markSent(row.id, row.version, created.id, this.now());
      }
    } catch (err) {
      const e = coerceError(err);
      if (err instanceof TrackerError && err.retryable) {
        const backoff = Math.min(this.opts.settings.retryMaxMs, this.opts.settings.retryBaseMs * 2 ** Math.min(30, attempts - 1));
        const jittered = Math.round(backoff * (0.8 + Math.random() * 0.4));
        const delay = Math.min(Math.max(jittered, err.retryAfterMs ?? 0), 3_600_000);
        await records.markRetry(row.id, attempts, new Date(this.now().getTime() + delay), e.message, this.now());
        this.opts.log?.('warn', `tracker outbox: ${e.message}; retrying in ${delay} ms`, { id: row.id, issue: row.issue, attempts });
        return;
      }
      if (err instanceof TrackerError && err.trackerStatus === 404 && row.kind === 'status' && commentId !== null && row.migrationId !== null) {
        // Someone deleted the status comment: post a new one rather than give up on the thread.
        await records.forgetStatusComment(row.migrationId);
        await records.markRetry(row.id, attempts, this.now(), e.message, this.now());
        return;
      }
      await records.markFailed(row.id, attempts, e.message, this.now());
      this.opts.log?.('error', `tracker outbox: gave up on a comment for ${row.issue}: ${e.message}`, { id: row.id });
    }
  }
}
