/** Issues as Ferry knows them: closed or not, and whether their teardown finished. Reached through the Store. */
import type { Kysely } from 'kysely';
import type { SqlDialect } from './dialect.ts';
import { notifyIn } from './notices.ts';
import type { IssueRecord } from './records.ts';
import { issueRecord } from './row-records.ts';
import type { Database } from './schema.ts';

export class IssueRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  /** This store's notice origin (MigrationTransitions.origin), so the closing node can tell its own notice. */
  private readonly origin: string;

  constructor(db: Kysely<Database>, dialect: SqlDialect, origin: string) {
    this.db = db;
    this.dialect = dialect;
    this.origin = origin;
  }

  async get(ref: string): Promise<IssueRecord | null> {
    const row = await this.db.selectFrom('issues').selectAll().where('ref', '=', ref).executeTakeFirst();
    return row ? issueRecord(row) : null;
  }

  /** Record that an issue is closed. Returns false when it already was (closure is idempotent). */
  async markClosed(ref: string, actor: string, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // Every node removes its own artifacts of a closed issue: tell them (again, on a repeated close).
      await notifyIn(trx, this.dialect, { t: 'closed', issue: ref, origin: this.origin });
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

  /** The issue's teardown is done when no artifact of it is left on any node: mark it so then. Returns whether it is. */
  async markTeardownDoneIfClear(ref: string, now: Date): Promise<boolean> {
    const result = await this.db
      .updateTable('issues')
      .set({ teardown_done_at: now.toISOString() })
      .where('ref', '=', ref)
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('artifacts').select('artifacts.id').where('artifacts.issue', '=', ref).where('artifacts.state', '!=', 'removed'))),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Closed issues whose teardown has not finished (a crash in the middle): resumed on start. */
  async pendingTeardown(): Promise<string[]> {
    const rows = await this.db.selectFrom('issues').select('ref').where('closed_at', 'is not', null).where('teardown_done_at', 'is', null).execute();
    return rows.map((r) => r.ref);
  }
}
