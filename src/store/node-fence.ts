/**
 * Fencing: a write a node makes on its own attempts carries its lease (name and epoch), and lands
 * only while that lease is current. Another node that takes over a lost node bumps its epoch in the
 * same transaction as it holds that node's attempts, so a node that was cut off and comes back can
 * never record an outcome over the takeover, nor start an attempt, until it has registered again.
 */
import { sql } from 'kysely';
import { FerryError } from '../core/errors.ts';
import type { SqlDialect } from './dialect.ts';
import type { NodeLease } from './records.ts';
import type { Db } from './schema.ts';

/** Throws FERRY_FENCED unless `lease` is its node's current lease and the node is up. Locks the node's row (shared) until the transaction ends. */
export async function fenceIn(db: Db, dialect: SqlDialect, lease: NodeLease): Promise<void> {
  let q = db.selectFrom('nodes').select(['epoch', 'state']).where('name', '=', lease.name);
  // A takeover locks the row for update: it waits for this write, or this write waits for it and sees the new epoch.
  if (dialect === 'postgres') q = q.forShare();
  const row = await q.executeTakeFirst();
  if (!row || Number(row.epoch) !== lease.epoch || row.state !== 'up') {
    throw new FerryError(
      'FERRY_FENCED',
      `node ${lease.name} no longer holds its lease (epoch ${lease.epoch}, now ${row ? `${row.epoch}, ${row.state}` : 'unregistered'}): another node took over; it must register again`,
      { node: lease.name },
    );
  }
}

/** The database's clock, in ms since 1970: leases compare times read from one clock only. */
export function dbNowMs(dialect: SqlDialect) {
  return dialect === 'postgres'
    ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`
    : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
}
