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

  /** The admin token's digest, or null before any node wrote one. */
  async digest(): Promise<string | null> {
    return (await this.db.selectFrom('admin_tokens').select('sha256').where('name', '=', 'admin').executeTakeFirst())?.sha256 ?? null;
  }

  /** Record `sha256` as the admin token's digest unless one is recorded already; returns the one recorded. */
  async claim(sha256: string, node: string, now: Date): Promise<string> {
    await this.db
      .insertInto('admin_tokens')
      .values({ name: 'admin', sha256, created_by: node, created_at: now.toISOString() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    return (await this.digest()) ?? sha256;
  }
}
