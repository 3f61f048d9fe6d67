/** Issues as Ferry knows them: closed or not, and whether their teardown finished. Reached through the Store. */
import type { Kysely } from 'kysely';
import type { IssueRecord } from './records.ts';
import { issueRecord } from './row-records.ts';
import type { Database } from './schema.ts';

export class IssueRecords {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async get(ref: string): Promise<IssueRecord | null> {
    const row = await this.db.selectFrom('issues').selectAll().where('ref', '=', ref).executeTakeFirst();
    return row ? issueRecord(row) : null;
  }

  /** Record that an issue is closed. Returns false when it already was (closure is idempotent). */
  async markClosed(ref: string, actor: string, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('issues').selectAll().where('ref', '=', ref).executeTakeFirst();
      if (row?.closed_at) return false;
      // Upsert: a webhook and an API call closing the same issue at once must not collide.
      await trx
        .insertInto('issues')
        .values({ ref, closed_at: now.toISOString(), closed_by: actor, teardown_done_at: null })
        .onConflict((oc) =>
          oc.column('ref').doUpdateSet({ closed_at: now.toISOString(), closed_by: actor, teardown_done_at: null }).where('issues.closed_at', 'is', null),
        )
        .execute();
      return true;
    });
  }

  async markTeardownDone(ref: string, now: Date): Promise<void> {
    await this.db.updateTable('issues').set({ teardown_done_at: now.toISOString() }).where('ref', '=', ref).execute();
  }

  /** Closed issues whose teardown has not finished (a crash in the middle): resumed on start. */
  async pendingTeardown(): Promise<string[]> {
    const rows = await this.db.selectFrom('issues').select('ref').where('closed_at', 'is not', null).where('teardown_done_at', 'is', null).execute();
    return rows.map((r) => r.ref);
  }
}
