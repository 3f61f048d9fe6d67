/**
 * Nodes: registration, the lease each node renews, and the takeover of a node whose lease ran out.
 * Leases are read on the database's clock only (last_seen_ms), so hosts' clocks never meet. A
 * takeover marks the node `lost`, bumps its epoch (fencing its later writes, node-fence.ts) and
 * holds each of its running migrations with cause `lost`, in one transaction. Nothing is re-run.
 * Reached through the Store.
 */
import { sql, type Kysely } from 'kysely';
import { FerryError } from '../core/errors.ts';
import type { FailureCause, MigrationState, Resources } from '../core/types.ts';
import { updateAttemptIn } from './attempt-records.ts';
import type { SqlDialect } from './dialect.ts';
import { insertEvent } from './event-records.ts';
import type { Heard, MigrationTransitions } from './migration-transitions.ts';
import { dbNowMs, fenceIn } from './node-fence.ts';
import { notifyIn } from './notices.ts';
import type { AttemptRecord, NodeLease, NodeRecord, TenantHome } from './records.ts';
import { attemptRecord, nodeRecord } from './row-records.ts';
import type { Database } from './schema.ts';

export interface NodeRegistration {
  readonly name: string;
  readonly substrate: string;
  readonly capacity: Resources;
  readonly enforced: readonly string[] | null;
  readonly tenantHome: TenantHome;
  readonly now: Date;
}

/** A node another node took over: its name, when it was last seen, and the migrations held `lost` for it. */
export interface TakenOverNode {
  readonly node: string;
  readonly lastSeenAt: string;
  readonly held: readonly string[];
}

/** What a job did after its attempt was taken over, as its node saw it on its return. */
export interface LateOutcome {
  readonly step: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly cause: FailureCause | null;
  readonly detail: string;
}

export class NodeRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;
  private readonly moves: MigrationTransitions;

  constructor(db: Kysely<Database>, dialect: SqlDialect, moves: MigrationTransitions) {
    this.db = db;
    this.dialect = dialect;
    this.moves = moves;
  }

  /**
   * Register (or re-register) a node: `up`, with a new epoch, seen now. SQLite holds one node: a
   * store that already has another is refused (FERRY_NODE_TAKEN). Tenants, attempts and artifacts
   * recorded before nodes existed become this node's (there was one runner per store then).
   */
  async register(r: NodeRegistration): Promise<{ lease: NodeLease; previous: NodeRecord | null }> {
    const at = r.now.toISOString();
    return this.db.transaction().execute(async (trx) => {
      if (this.dialect === 'sqlite') {
        const other = await trx.selectFrom('nodes').select('name').where('name', '!=', r.name).executeTakeFirst();
        if (other) {
          throw new FerryError(
            'FERRY_NODE_TAKEN',
            `this SQLite store belongs to node ${other.name}, and SQLite holds one node: start Ferry as --node ${other.name} (FERRY_NODE), or use PostgreSQL (--database-url) to run several nodes`,
            { node: other.name },
          );
        }
      }
      let q = trx.selectFrom('nodes').selectAll().where('name', '=', r.name);
      if (this.dialect === 'postgres') q = q.forUpdate();
      const before = await q.executeTakeFirst();
      const values = {
        url: null,
        substrate: r.substrate,
        capacity: JSON.stringify(r.capacity),
        enforced: r.enforced === null ? null : JSON.stringify(r.enforced),
        tenant_home: JSON.stringify(r.tenantHome),
        state: 'up',
        started_at: at,
        last_seen_ms: dbNowMs(this.dialect),
        lost_at: null,
      };
      const epoch = before ? Number(before.epoch) + 1 : 1;
      if (before)
        await trx
          .updateTable('nodes')
          .set({ ...values, epoch })
          .where('name', '=', r.name)
          .execute();
      else
        await trx
          .insertInto('nodes')
          .values({ name: r.name, ...values, epoch })
          .execute();
      await trx.updateTable('tenants').set({ node: r.name }).where('node', 'is', null).execute();
      await trx.updateTable('attempts').set({ node: r.name }).where('node', 'is', null).execute();
      await trx.updateTable('artifacts').set({ node: r.name }).where('node', 'is', null).execute();
      return { lease: { name: r.name, epoch }, previous: before ? nodeRecord(before) : null };
    });
  }

  /** Record the node's API address once it listens. */
  async setUrl(lease: NodeLease, url: string): Promise<void> {
    await this.db.updateTable('nodes').set({ url }).where('name', '=', lease.name).where('epoch', '=', lease.epoch).execute();
  }

  /** Renew the lease: false when it is no longer this node's (taken over, or re-registered by another process). */
  async renew(lease: NodeLease): Promise<boolean> {
    const result = await this.db
      .updateTable('nodes')
      .set({ last_seen_ms: dbNowMs(this.dialect) })
      .where('name', '=', lease.name)
      .where('epoch', '=', lease.epoch)
      .where('state', '=', 'up')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** A clean stop: the node is `left` (its jobs, if any, are re-attached when it starts again). */
  async leave(lease: NodeLease): Promise<void> {
    await this.db.updateTable('nodes').set({ state: 'left' }).where('name', '=', lease.name).where('epoch', '=', lease.epoch).execute();
  }

  async list(): Promise<NodeRecord[]> {
    return (await this.db.selectFrom('nodes').selectAll().orderBy('name').execute()).map(nodeRecord);
  }

  async get(name: string): Promise<NodeRecord | null> {
    const row = await this.db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? nodeRecord(row) : null;
  }

  /**
   * Take over every node whose lease ran out (`up`, not renewed for `lostAfterMs` on the database's
   * clock): mark it `lost`, bump its epoch, and hold each migration it is running with cause `lost`
   * and a detail naming it and when it was last seen. Only a node whose own lease is current takes
   * over others. Nodes another taker is handling are skipped (SKIP LOCKED).
   */
  async takeOverLost(self: NodeLease, lostAfterMs: number, now: Date): Promise<TakenOverNode[]> {
    const at = now.toISOString();
    const heard: Heard = [];
    const taken = await this.db.transaction().execute(async (trx) => {
      await fenceIn(trx, this.dialect, self);
      let q = trx
        .selectFrom('nodes')
        .selectAll()
        .where('state', '=', 'up')
        .where('name', '!=', self.name)
        .where('last_seen_ms', '<', sql<number>`${dbNowMs(this.dialect)} - ${lostAfterMs}`);
      if (this.dialect === 'postgres') q = q.forUpdate().skipLocked();
      const out: TakenOverNode[] = [];
      for (const node of await q.execute()) {
        const lastSeenAt = new Date(Number(node.last_seen_ms)).toISOString();
        await trx
          .updateTable('nodes')
          .set({ state: 'lost', epoch: Number(node.epoch) + 1, lost_at: at })
          .where('name', '=', node.name)
          .where('epoch', '=', node.epoch)
          .execute();
        const detail = `node ${node.name} was lost: it last renewed its lease at ${lastSeenAt} and not in the ${Math.round(lostAfterMs / 1000)} s since; its job may still be running there, and Ferry never runs it anywhere else`;
        let running = trx
          .selectFrom('migrations')
          .innerJoin('attempts', (j) => j.onRef('attempts.migration_id', '=', 'migrations.id').onRef('attempts.number', '=', 'migrations.attempts'))
          .select(['migrations.id', 'attempts.number', 'attempts.step', 'attempts.from_step'])
          .where('migrations.state', '=', 'running')
          .where('attempts.node', '=', node.name);
        if (this.dialect === 'postgres') running = running.forUpdate();
        const held: string[] = [];
        for (const m of await running.execute()) {
          await this.moves.applyIn(
            trx,
            {
              id: m.id,
              from: 'running',
              moves: [
                {
                  patch: { failedStep: Number(m.step ?? m.from_step), heldCause: 'lost', heldDetail: detail, next: null },
                  event: {
                    actor: `ferry:${self.name}`,
                    kind: 'fail',
                    reason: detail,
                    detail: { cause: 'lost', node: node.name, lastSeenAt, takenOverBy: self.name },
                  },
                },
              ],
              now,
            },
            heard,
            async (t) => {
              await updateAttemptIn(t, m.id, Number(m.number), { endedAt: at, cause: 'lost', detail });
              await t.updateTable('attempts').set({ taken_over_at: at }).where('migration_id', '=', m.id).where('number', '=', m.number).execute();
            },
          );
          held.push(m.id);
        }
        await notifyIn(trx, this.dialect, { t: 'lost', node: node.name });
        out.push({ node: node.name, lastSeenAt, held });
      }
      return out;
    });
    this.moves.tell(heard);
    return taken;
  }

  /** Attempts of `node` that another node took over and whose job's real outcome is not recorded yet. */
  async listTakenOver(node: string): Promise<AttemptRecord[]> {
    const rows = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('node', '=', node)
      .where('taken_over_at', 'is not', null)
      .where('late_outcome_at', 'is', null)
      .orderBy('started_at')
      .execute();
    return rows.map(attemptRecord);
  }

  /**
   * Record, as an event on the migration (its state unchanged), what the job of a taken-over attempt
   * really did. Once per attempt; only by the attempt's node with its current lease. False when it
   * was recorded already.
   */
  async recordLateOutcome(lease: NodeLease, migrationId: string, number: number, outcome: LateOutcome, now: Date): Promise<boolean> {
    const at = now.toISOString();
    return this.db.transaction().execute(async (trx) => {
      await fenceIn(trx, this.dialect, lease);
      const result = await trx
        .updateTable('attempts')
        .set({ late_outcome_at: at })
        .where('migration_id', '=', migrationId)
        .where('number', '=', number)
        .where('node', '=', lease.name)
        .where('taken_over_at', 'is not', null)
        .where('late_outcome_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      const m = await trx.selectFrom('migrations').select('state').where('id', '=', migrationId).executeTakeFirstOrThrow();
      const state = m.state as MigrationState;
      const what = outcome.cause === null ? `exited 0` : `ended: ${outcome.cause}`;
      await insertEvent(
        trx,
        migrationId,
        state,
        state,
        {
          actor: `ferry:${lease.name}`,
          kind: 'late-outcome',
          reason: `node ${lease.name} is back: the job of attempt ${number} kept running after the takeover and ${what} (${outcome.detail}); the migration stays ${state}, decide with this in mind`,
          detail: { attempt: number, ...outcome },
        },
        at,
      );
      return true;
    });
  }
}
