/**
 * The tracker tables (schema migration 0002): delivery ids seen, thread addresses, the comment
 * outbox and the id of each migration's status comment. Plain functions over a Kysely handle, so
 * a caller can put several of them, and its own writes, in one transaction.
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { TrackerKind } from '../core/issue-ref.ts';
import type { Database, TrackerOutboxTable } from '../store/schema.ts';

export type Db = Kysely<Database> | Transaction<Database>;

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

// ---------------------------------------------------------------- deliveries

export async function deliverySeen(db: Db, tracker: TrackerKind, deliveryId: string): Promise<boolean> {
  const row = await db.selectFrom('tracker_deliveries').select('delivery_id').where('tracker', '=', tracker).where('delivery_id', '=', deliveryId).executeTakeFirst();
  return row !== undefined;
}

/** Record a delivery id; false when it was recorded already (then the caller must roll back). */
export async function recordDelivery(db: Db, tracker: TrackerKind, deliveryId: string, event: string, now: Date): Promise<boolean> {
  const result = await db
    .insertInto('tracker_deliveries')
    .values({ tracker, delivery_id: deliveryId, event, received_at: now.toISOString() })
    .onConflict((oc) => oc.columns(['tracker', 'delivery_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}

// ---------------------------------------------------------------- threads

export async function saveThreadUrl(db: Db, tracker: TrackerKind, issue: string, url: string, now: Date): Promise<void> {
  await db
    .insertInto('tracker_threads')
    .values({ issue, tracker, url, updated_at: now.toISOString() })
    .onConflict((oc) => oc.column('issue').doUpdateSet({ url, updated_at: now.toISOString() }))
    .execute();
}

export async function threadUrl(db: Db, issue: string): Promise<string | null> {
  const row = await db.selectFrom('tracker_threads').select('url').where('issue', '=', issue).executeTakeFirst();
  return row?.url ?? null;
}

// ---------------------------------------------------------------- outbox

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

/** Enqueue a one-off comment. Returns false when its dedupe key was enqueued before. */
export async function enqueueComment(db: Db, c: NewComment, now: Date): Promise<boolean> {
  const at = now.toISOString();
  const result = await db
    .insertInto('tracker_outbox')
    .values(pendingRow({ tracker: c.tracker, issue: c.issue, kind: 'comment', migrationId: c.migrationId ?? null, dedupeKey: c.dedupeKey ?? null, body: c.body }, at))
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}

/**
 * Enqueue the latest body of a migration's status comment. Coalesces: a pending status row of the
 * migration gets the new body and a higher version (so a send in flight with the old body does not
 * mark it sent); otherwise a new pending row is added. Call it serialised per migration.
 */
export async function enqueueStatus(db: Kysely<Database>, s: { tracker: TrackerKind; issue: string; migrationId: string; body: string }, now: Date): Promise<void> {
  const at = now.toISOString();
  for (let tries = 0; ; tries++) {
    try {
      await db.transaction().execute(async (trx) => {
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
          return;
        }
        await trx
          .insertInto('tracker_outbox')
          .values(pendingRow({ tracker: s.tracker, issue: s.issue, kind: 'status', migrationId: s.migrationId, dedupeKey: null, body: s.body }, at))
          .execute();
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
export async function lastStatusBody(db: Db, migrationId: string): Promise<string | null> {
  const row = await db
    .selectFrom('tracker_outbox')
    .select('body')
    .where('migration_id', '=', migrationId)
    .where('kind', '=', 'status')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.body ?? null;
}

export async function pendingRows(db: Db, limit = 500): Promise<OutboxRow[]> {
  const rows = await db.selectFrom('tracker_outbox').selectAll().where('state', '=', 'pending').orderBy('id').limit(limit).execute();
  return rows.map(outboxRow);
}

export async function getRow(db: Db, id: number): Promise<OutboxRow | null> {
  const row = await db.selectFrom('tracker_outbox').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? outboxRow(row) : null;
}

export async function listOutbox(db: Db, filter: { issue?: string; state?: OutboxState } = {}): Promise<OutboxRow[]> {
  let q = db.selectFrom('tracker_outbox').selectAll();
  if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
  if (filter.state !== undefined) q = q.where('state', '=', filter.state);
  return (await q.orderBy('id').execute()).map(outboxRow);
}

/** Mark a row sent, if it still has `version`. False: a newer body came meanwhile, the row stays pending. */
export async function markSent(db: Db, id: number, version: number, commentId: string | null, now: Date): Promise<boolean> {
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

export async function markRetry(db: Db, id: number, attempts: number, nextAt: Date, error: string, now: Date): Promise<void> {
  await db
    .updateTable('tracker_outbox')
    .set({ attempts, next_at: nextAt.toISOString(), last_error: error.slice(0, 2000), updated_at: now.toISOString() })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .execute();
}

export async function markFailed(db: Db, id: number, attempts: number, error: string, now: Date): Promise<void> {
  await db
    .updateTable('tracker_outbox')
    .set({ state: 'failed', attempts, last_error: error.slice(0, 2000), updated_at: now.toISOString() })
    .where('id', '=', id)
    .where('state', '=', 'pending')
    .execute();
}

/** After a restart every pending row is due at once: a restart is a natural moment to retry. */
export async function makePendingDue(db: Db, now: Date): Promise<void> {
  await db.updateTable('tracker_outbox').set({ next_at: now.toISOString() }).where('state', '=', 'pending').execute();
}

/** Forget sent or failed rows and delivery ids older than `before`. */
export async function prune(db: Db, before: Date): Promise<void> {
  const at = before.toISOString();
  await db.deleteFrom('tracker_outbox').where('state', 'in', ['sent', 'failed']).where('updated_at', '<', at).execute();
  await db.deleteFrom('tracker_deliveries').where('received_at', '<', at).execute();
}

// ---------------------------------------------------------------- status comments

export async function statusCommentId(db: Db, migrationId: string): Promise<string | null> {
  const row = await db.selectFrom('tracker_status_comments').select('comment_id').where('migration_id', '=', migrationId).executeTakeFirst();
  return row?.comment_id ?? null;
}

export async function saveStatusComment(db: Db, s: { migrationId: string; tracker: TrackerKind; issue: string; commentId: string }, now: Date): Promise<void> {
  await db
    .insertInto('tracker_status_comments')
    .values({ migration_id: s.migrationId, tracker: s.tracker, issue: s.issue, comment_id: s.commentId, created_at: now.toISOString() })
    .onConflict((oc) => oc.column('migration_id').doUpdateSet({ comment_id: s.commentId }))
    .execute();
}

export async function forgetStatusComment(db: Db, migrationId: string): Promise<void> {
  await db.deleteFrom('tracker_status_comments').where('migration_id', '=', migrationId).execute();
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

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
