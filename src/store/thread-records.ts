/**
 * The tracker tables (schema migration 0002): delivery ids seen, thread addresses, the comment
 * outbox and the id of each migration's status comment. Reached as `store.threads`; the writes that
 * must land together (a delivery with the comments it causes, a created status comment with its
 * row marked sent) are single methods here, so callers never hold a transaction.
 */
import type { Kysely, Selectable } from 'kysely';
import type { TrackerKind } from '../core/issue-ref.ts';
import type { SqlDialect } from './dialect.ts';
import { notifyIn } from './notices.ts';
import type { Database, Db, TrackerOutboxTable } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

export type OutboxState = 'pending' | 'sent' | 'failed';

export interface OutboxRow {
  readonly id: number;
  readonly tracker: TrackerKind;
  readonly issue: string;
  readonly kind: 'comment' | 'status';
  readonly migrationId: string | null;
  readonly dedupeKey: string | null;
  readonly body: string;
  readonly version: number;
  readonly state: OutboxState;
  readonly attempts: number;
  readonly nextAt: string;
  readonly lastError: string | null;
  readonly commentId: string | null;
  readonly createdAt: string;
  readonly sentAt: string | null;
}

export interface NewComment {
  readonly tracker: TrackerKind;
  readonly issue: string;
  readonly body: string;
  /** The same key is never enqueued twice (e.g. `held:<migration>:<attempt>`). */
  readonly dedupeKey?: string | null | undefined;
  readonly migrationId?: string | null | undefined;
}

/** A delivery that was acted on: its id, the thread's address, and the comments it causes. */
export interface AppliedDelivery {
  readonly tracker: TrackerKind;
  readonly deliveryId: string;
  /** The tracker's event name, as the delivery's headers gave it. */
  readonly event: string;
  readonly thread: { readonly issue: string; readonly url: string };
  readonly comments: readonly NewComment[];
}

export class ThreadRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  constructor(db: Kysely<Database>, dialect: SqlDialect = 'sqlite') {
    this.db = db;
    this.dialect = dialect;
  }

  // ── deliveries ───────────────────────────────────────────────────────────

  async deliverySeen(tracker: TrackerKind, deliveryId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('tracker_deliveries')
      .select('delivery_id')
      .where('tracker', '=', tracker)
      .where('delivery_id', '=', deliveryId)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Record the id of a delivery Ferry does not act on. False when it was recorded already. */
  async recordDelivery(tracker: TrackerKind, deliveryId: string, event: string, now: Date): Promise<boolean> {
    return recordDeliveryIn(this.db, tracker, deliveryId, event, now);
  }

  /**
   * Record an applied delivery's id, the thread's address and the comments it causes, in one
   * transaction. False (and nothing written) when the id was recorded meanwhile: another node
   * applied it, and its comments must not go out twice.
   */
  async recordAppliedDelivery(d: AppliedDelivery, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await recordDeliveryIn(trx, d.tracker, d.deliveryId, d.event, now))) return false;
      await trx
        .insertInto('tracker_threads')
        .values({ issue: d.thread.issue, tracker: d.tracker, url: d.thread.url, updated_at: now.toISOString() })
        .onConflict((oc) => oc.column('issue').doUpdateSet({ url: d.thread.url, updated_at: now.toISOString() }))
        .execute();
      for (const comment of d.comments) await enqueueCommentIn(trx, comment, now);
      // The cluster's sender may be another node: wake it.
      if (d.comments.length > 0) await notifyIn(trx, this.dialect, { t: 'outbox' });
      return true;
    });
  }

  // ── threads ──────────────────────────────────────────────────────────────

  /** The thread's web address as the tracker last sent it, or null. */
  async threadUrl(issue: string): Promise<string | null> {
    const row = await this.db.selectFrom('tracker_threads').select('url').where('issue', '=', issue).executeTakeFirst();
    return row?.url ?? null;
  }

  // ── outbox ───────────────────────────────────────────────────────────────

  /** Enqueue a one-off comment. Returns false when its dedupe key was enqueued before. */
  async enqueueComment(c: NewComment, now: Date): Promise<boolean> {
    const added = await enqueueCommentIn(this.db, c, now);
    if (added) await notifyIn(this.db, this.dialect, { t: 'outbox' });
    return added;
  }

  /**
   * Enqueue the latest body of a migration's status comment. Coalesces: a pending status row of the
   * migration gets the new body and a higher version (so a send in flight with the old body does not
   * mark it sent); otherwise a new pending row is added. Call it serialised per migration.
   */
  async enqueueStatus(s: { tracker: TrackerKind; issue: string; migrationId: string; body: string }, now: Date): Promise<void> {
    const at = now.toISOString();
    for (let tries = 0; ; tries++) {
      try {
        await this.db.transaction().execute(async (trx) => {
          const pending = await trx
            .selectFrom('tracker_outbox')
            .select(['id', 'version', 'body'])
            .where('migration_id', '=', s.migrationId)
            .where('kind', '=', 'status')
            .where('state', '=', 'pending')
            .executeTakeFirst();
          if (pending) {
            if (pending.body === s.body) return;
            await trx
              .updateTable('tracker_outbox')
              .set({ body: s.body, version: Number(pending.version) + 1, updated_at: at })
              .where('id', '=', pending.id)
              .execute();
          } else {
            await trx
              .insertInto('tracker_outbox')
              .values(pendingRow({ tracker: s.tracker, issue: s.issue, kind: 'status', migrationId: s.migrationId, dedupeKey: null, body: s.body }, at))
              .execute();
          }
          // The cluster's sender may be another node: wake it.
          await notifyIn(trx, this.dialect, { t: 'outbox' });
        });
        return;
      } catch (err) {
        // Another node inserted the pending row first (tracker_outbox_one_pending_status): update it instead.
        if (tries < 3 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  }

  /** The body most recently enqueued for a migration's status comment, or null. */
  async lastStatusBody(migrationId: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('tracker_outbox')
      .select('body')
      .where('migration_id', '=', migrationId)
      .where('kind', '=', 'status')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.body ?? null;
  }

  /** Pending rows, oldest first. */
  async pendingRows(limit = 500): Promise<OutboxRow[]> {
    const rows = await this.db.selectFrom('tracker_outbox').selectAll().where('state', '=', 'pending').orderBy('id').limit(limit).execute();
    return rows.map(outboxRow);
  }

  /** Mark a row sent, if it still has `version`. False: a newer body came meanwhile, the row stays pending. */
  async markSent(id: number, version: number, commentId: string | null, now: Date): Promise<boolean> {
    return markSentIn(this.db, id, version, commentId, now);
  }

  /**
   * The first send of a status row created the comment: record its id and mark the row sent, in one
   * transaction, so a newer body edits that comment instead of posting another.
   */
  async markStatusCommentCreated(
    row: Pick<OutboxRow, 'id' | 'version' | 'tracker' | 'issue'> & { migrationId: string },
    commentId: string,
    now: Date,
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('tracker_status_comments')
        .values({ migration_id: row.migrationId, tracker: row.tracker, issue: row.issue, comment_id: commentId, created_at: now.toISOString() })
        .onConflict((oc) => oc.column('migration_id').doUpdateSet({ comment_id: commentId }))
        .execute();
      await markSentIn(trx, row.id, row.version, commentId, now);
    });
  }

  async markRetry(id: number, attempts: number, nextAt: Date, error: string, now: Date): Promise<void> {
    await this.db
      .updateTable('tracker_outbox')
      .set({ attempts, next_at: nextAt.toISOString(), last_error: error.slice(0, 2000), updated_at: now.toISOString() })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .execute();
  }

  async markFailed(id: number, attempts: number, error: string, now: Date): Promise<void> {
    await this.db
      .updateTable('tracker_outbox')
      .set({ state: 'failed', attempts, last_error: error.slice(0, 2000), updated_at: now.toISOString() })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .execute();
  }

  /** After a restart every pending row is due at once: a restart is a natural moment to retry. */
  async makePendingDue(now: Date): Promise<void> {
    await this.db.updateTable('tracker_outbox').set({ next_at: now.toISOString() }).where('state', '=', 'pending').execute();
  }

  /** Forget sent or failed rows and delivery ids older than `before`. */
  async prune(before: Date): Promise<void> {
    const at = before.toISOString();
    await this.db.deleteFrom('tracker_outbox').where('state', 'in', ['sent', 'failed']).where('updated_at', '<', at).execute();
    await this.db.deleteFrom('tracker_deliveries').where('received_at', '<', at).execute();
  }

  // ── status comments ──────────────────────────────────────────────────────

  async statusCommentId(migrationId: string): Promise<string | null> {
    const row = await this.db.selectFrom('tracker_status_comments').select('comment_id').where('migration_id', '=', migrationId).executeTakeFirst();
    return row?.comment_id ?? null;
  }

  async forgetStatusComment(migrationId: string): Promise<void> {
    await this.db.deleteFrom('tracker_status_comments').where('migration_id', '=', migrationId).execute();
  }
}

/** Record a delivery id; false when it was recorded already (then the caller must roll back). */
async function recordDeliveryIn(db: Db, tracker: TrackerKind, deliveryId: string, event: string, now: Date): Promise<boolean> {
  const result = await db
    .insertInto('tracker_deliveries')
    .values({ tracker, delivery_id: deliveryId, event, received_at: now.toISOString() })
    .onConflict((oc) => oc.columns(['tracker', 'delivery_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}

async function enqueueCommentIn(db: Db, c: NewComment, now: Date): Promise<boolean> {
  const at = now.toISOString();
  const result = await db
    .insertInto('tracker_outbox')
    .values(
      pendingRow({ tracker: c.tracker, issue: c.issue, kind: 'comment', migrationId: c.migrationId ?? null, dedupeKey: c.dedupeKey ?? null, body: c.body }, at),
    )
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}

async function markSentIn(db: Db, id: number, version: number, commentId: string | null, now: Date): Promise<boolean> {
  const at = now.toISOString();
  const result = await db
    .updateTable('tracker_outbox')
    .set({ state: 'sent', sent_at: at, updated_at: at, comment_id: commentId, last_error: null })
    .where('id', '=', id)
    .where('version', '=', version)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** A new outbox row, due now. */
function pendingRow(
  r: { tracker: TrackerKind; issue: string; kind: 'comment' | 'status'; migrationId: string | null; dedupeKey: string | null; body: string },
  at: string,
) {
  return {
    tracker: r.tracker,
    issue: r.issue,
    kind: r.kind,
    migration_id: r.migrationId,
    dedupe_key: r.dedupeKey,
    body: r.body,
    version: 1,
    state: 'pending',
    attempts: 0,
    next_at: at,
    last_error: null,
    comment_id: null,
    created_at: at,
    updated_at: at,
    sent_at: null,
  };
}

function outboxRow(r: Selectable<TrackerOutboxTable>): OutboxRow {
  return {
    id: Number(r.id),
    tracker: r.tracker as TrackerKind,
    issue: r.issue,
    kind: r.kind as 'comment' | 'status',
    migrationId: r.migration_id,
    dedupeKey: r.dedupe_key,
    body: r.body,
    version: Number(r.version),
    state: r.state as OutboxState,
    attempts: Number(r.attempts),
    nextAt: r.next_at,
    lastError: r.last_error,
    commentId: r.comment_id,
    createdAt: r.created_at,
    sentAt: r.sent_at,
  };
}
