/**
 * Tenants: registration with identity allocation, and the rule that a held tenant's folder and
 * identity are frozen. Reached through the Store.
 */
import { sql, type Kysely } from 'kysely';
import { FerryError } from '../core/errors.ts';
import type { Identity, Resources } from '../core/types.ts';
import type { SqlDialect } from './dialect.ts';
import { notifyIn } from './notices.ts';
import type { TenantRecord } from './records.ts';
import { tenantRecord } from './row-records.ts';
import type { Database, Db } from './schema.ts';
import { holderOf } from './tenant-holders.ts';

/** The uids Ferry gives to tenants registered without a `runAs` (gid = uid). */
export interface UidRange {
  readonly first: number;
  readonly last: number;
}

export interface TenantInput {
  readonly steadyState: Resources;
  readonly data: string;
  readonly runAs: Identity | null;
  readonly allowRoot: boolean;
  /** The node it lives on; default: the one it has (none for a tenant registered before nodes existed). */
  readonly node?: string | undefined;
  /** Where its jobs are placed (swarm substrate); default: none. */
  readonly placement?: string | null | undefined;
}

export class TenantRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
  }

  /**
   * Register or update a tenant. Its identity is the given `runAs`, else the one it has, else the next
   * free uid of `uidRange` (gid = uid). Changing `data` or `runAs` while a migration holds the tenant
   * is refused (FERRY_TENANT_BUSY): a wipe or a job would then act on another folder or as another user.
   * Allocation, the holder check and the upsert share one transaction.
   */
  async put(id: string, input: TenantInput, uidRange: UidRange, now: Date): Promise<{ tenant: TenantRecord; created: boolean; previous: TenantRecord | null }> {
    const at = now.toISOString();
    return this.db.transaction().execute(async (trx) => {
      const before = await trx.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
      const previous = before ? tenantRecord(before) : null;
      const runAs = input.runAs ?? previous?.runAs ?? (await allocateIdentity(trx, uidRange, this.dialect));
      const node = input.node ?? previous?.node ?? null;
      const placement = input.placement ?? null;
      const changed =
        previous === null
          ? null
          : previous.data !== input.data
            ? 'data'
            : previous.runAs?.uid !== runAs.uid || previous.runAs?.gid !== runAs.gid
              ? 'runAs'
              : previous.node !== node
                ? 'node'
                : previous.placement !== placement
                  ? 'placement'
                  : null;
      if (changed) {
        const holder = await holderOf(trx, id);
        if (holder) {
          throw new FerryError(
            'FERRY_TENANT_BUSY',
            `tenant ${id} is held by migration ${holder} (${changed} cannot change while a migration holds it); finish or abandon that migration first`,
            { tenant: id, holder },
          );
        }
      }
      const sharing = await trx.selectFrom('tenants').select('id').where('run_as_uid', '=', runAs.uid).where('id', '!=', id).executeTakeFirst();
      if (sharing) {
        throw new FerryError(
          'FERRY_CONFLICT',
          `uid ${runAs.uid} is already tenant ${sharing.id}'s identity; give each tenant its own uid (or omit runAs and Ferry picks one)`,
          {
            tenant: id,
            uid: runAs.uid,
          },
        );
      }
      const values = {
        steady_state: JSON.stringify(input.steadyState),
        data: input.data,
        run_as_uid: runAs.uid,
        run_as_gid: runAs.gid,
        allow_root: input.allowRoot ? 1 : 0,
        node,
        placement,
        // Its node hands the data to its identity (again) when the data, identity or node changed.
        adopted_at: previous === null || changed ? null : previous.adoptedAt,
        updated_at: at,
      };
      // Upsert: two concurrent PUTs of a new tenant must not collide on the primary key.
      await trx
        .insertInto('tenants')
        .values({ id, ...values, created_at: at })
        .onConflict((oc) => oc.column('id').doUpdateSet(values))
        .execute();
      const row = await trx.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      // Its node (which may be another) hands the data over and may start its queued migrations.
      await notifyIn(trx, this.dialect, { t: 'tenant', id, node });
      return { tenant: tenantRecord(row), created: !before, previous };
    });
  }

  /** Give an identity from `uidRange` to every tenant registered before identities existed. Returns their ids. */
  async assignMissingIdentities(uidRange: UidRange, now: Date): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const missing = await trx.selectFrom('tenants').select('id').where('run_as_uid', 'is', null).orderBy('id').execute();
      for (const { id } of missing) {
        const runAs = await allocateIdentity(trx, uidRange, this.dialect);
        await trx.updateTable('tenants').set({ run_as_uid: runAs.uid, run_as_gid: runAs.gid, updated_at: now.toISOString() }).where('id', '=', id).execute();
      }
      return missing.map((r) => r.id);
    });
  }

  /** Record that its node handed the tenant's data to its identity, unless the tenant changed since `seen` (its updatedAt). */
  async markAdopted(id: string, seen: string, now: Date): Promise<void> {
    await this.db.updateTable('tenants').set({ adopted_at: now.toISOString() }).where('id', '=', id).where('updated_at', '=', seen).execute();
  }

  /** Tenants living on `node` whose data it has not handed to their identity yet. */
  async listUnadopted(node: string): Promise<TenantRecord[]> {
    const rows = await this.db.selectFrom('tenants').selectAll().where('node', '=', node).where('adopted_at', 'is', null).orderBy('id').execute();
    return rows.map(tenantRecord);
  }

  async get(id: string): Promise<TenantRecord | null> {
    const row = await this.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? tenantRecord(row) : null;
  }

  async list(): Promise<TenantRecord[]> {
    const rows = await this.db.selectFrom('tenants').selectAll().orderBy('id').execute();
    return rows.map(tenantRecord);
  }
}

/**
 * The next uid of the range after the highest one given (gid = uid); FERRY_CONFLICT when the range is
 * used up. On PostgreSQL, registrations through several nodes (or several requests) at once take
 * turns (a transaction advisory lock), so two never pick the same uid; SQLite has one writer.
 */
async function allocateIdentity(db: Db, range: UidRange, dialect: SqlDialect): Promise<Identity> {
  if (dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(hashtext('ferry-uid-allocation:' || current_schema()))`.execute(db);
  const row = await db
    .selectFrom('tenants')
    .select((eb) => eb.fn.max('run_as_uid').as('top'))
    .where('run_as_uid', '>=', range.first)
    .where('run_as_uid', '<=', range.last)
    .executeTakeFirst();
  const top = row?.top === null || row?.top === undefined ? null : Number(row.top);
  const uid = top === null ? range.first : top + 1;
  if (uid > range.last) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `every uid of the range ${range.first}-${range.last} is given to a tenant; widen uidRange or give this tenant a runAs`,
    );
  }
  return { uid, gid: uid };
}
