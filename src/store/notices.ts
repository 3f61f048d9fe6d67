/**
 * Notices between nodes: a committed change another node must act on soon (a migration moved, which
 * may queue or free one of its tenants, an issue closed, a tenant registered for it, a node taken
 * over), or show (its event stream). On PostgreSQL a
 * notice is a NOTIFY sent in the transaction of the change, so it goes out when (and only if) the
 * change commits; each node LISTENs (node-session.ts). SQLite has one node: nothing to send.
 */
import { sql } from 'kysely';
import type { SqlDialect } from './dialect.ts';
import type { Db } from './schema.ts';

export const NOTICE_CHANNEL = 'ferry';

export type Notice =
  /**
   * A migration moved (its new state); `origin` is the store that moved it, so a node can tell its
   * own moves from the others'; `node`, the node its tenant lives on (absent from older nodes).
   */
  | { readonly t: 'moved'; readonly id: string; readonly tenant: string; readonly state: string; readonly origin: string; readonly node?: string | null }
  /** An issue closed; `origin` is the store that closed it: that node runs the closure itself. */
  | { readonly t: 'closed'; readonly issue: string; readonly origin?: string }
  | { readonly t: 'tenant'; readonly id: string; readonly node: string | null }
  | { readonly t: 'lost'; readonly node: string }
  /** A comment was enqueued: the cluster's outbox sender (maybe another node) sends it now. */
  | { readonly t: 'outbox' };

export async function notifyIn(db: Db, dialect: SqlDialect, notice: Notice): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`SELECT pg_notify(${NOTICE_CHANNEL}, ${JSON.stringify(notice)})`.execute(db);
}

/**
 * PostgreSQL: the `moved` notice of the migration a CTE named `source` wrote, as a select-list
 * expression, so the compare-and-set, its events and its notice are one statement.
 */
export function movedNoticeOf(source: string, origin: string) {
  const col = (c: string) => sql.ref(`${source}.${c}`);
  const node = sql`(SELECT node FROM tenants WHERE id = ${col('tenant')})`;
  return sql<string>`pg_notify(${NOTICE_CHANNEL}, json_build_object('t', 'moved', 'id', ${col('id')}, 'tenant', ${col('tenant')}, 'state', ${col('state')}, 'origin', ${origin}::text, 'node', ${node})::text)`;
}

/** A notice's payload as received; null when it is not one of Ferry's. */
export function parseNotice(payload: string | undefined): Notice | null {
  if (!payload) return null;
  try {
    const n = JSON.parse(payload) as Notice;
    return typeof n === 'object' && n !== null && typeof n.t === 'string' ? n : null;
  } catch {
    return null;
  }
}
