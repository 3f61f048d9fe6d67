/**
 * The admin token's digest, in the store, so that the token the first node wrote to its data
 * folder works on every node. Only digests are kept. Reached through the Store.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

export class AdminTokenRecords {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  /** The admin token's digest and the node that made it, or null before any node did. */
  async get(): Promise<{ sha256: string; createdBy: string } | null> {
    const row = await this.db.selectFrom('admin_tokens').select(['sha256', 'created_by']).where('name', '=', 'admin').executeTakeFirst();
    return row ? { sha256: row.sha256, createdBy: row.created_by } : null;
  }

  /** Replace the admin token's digest (its maker rotated it: the old token stops working). */
  async replace(sha256: string, node: string, now: Date): Promise<void> {
    await this.db.updateTable('admin_tokens').set({ sha256, created_by: node, created_at: now.toISOString() }).where('name', '=', 'admin').execute();
  }

  /** Record `sha256` as the admin token's digest unless one is recorded already; returns the one recorded. */
  async claim(sha256: string, node: string, now: Date): Promise<string> {
    await this.db
      .insertInto('admin_tokens')
      .values({ name: 'admin', sha256, created_by: node, created_at: now.toISOString() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    return (await this.get())?.sha256 ?? sha256;
  }
}
