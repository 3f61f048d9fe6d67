/**
 * Migrations: filing, reading, and the changes that are not a state change (checkpoint, progress,
 * snapshot). State changes are compare-and-set transitions, in migration-transitions.ts. Reached
 * through the Store.
 */
import type { Insertable, Kysely } from 'kysely';
import type { SqlDialect } from './dialect.ts';
import { FerryError } from '../core/errors.ts';
import type { MigrationRequest, MigrationState, Resources, Verdict } from '../core/types.ts';
import { EVENT_COLUMNS, eventRow, eventsOf, type EventInput } from './event-records.ts';
import type { MigrationRecord } from './records.ts';
import { migrationRecord, patchColumns, type MigrationPatch } from './row-records.ts';
import type { Database, MigrationsTable } from './schema.ts';
import { holdsItsTenant } from './tenant-holders.ts';

export interface NewMigration {
  readonly id: string;
  readonly issue: string;
  readonly tenant: string;
  readonly request: MigrationRequest;
  readonly verdict: Verdict;
  readonly filedBy: string;
}

export interface MigrationFilter {
  tenant?: string;
  /** Only migrations of these tenants (a token limited to tenants); default: all. */
  tenants?: readonly string[];
  state?: readonly MigrationState[];
  issue?: string;
  /** Oldest first (`asc`, the default) or newest first (`desc`), by filing time then id. */
  order?: 'asc' | 'desc';
  /** Keyset paging: only migrations after this one in `order` (its createdAt and id). */
  after?: { readonly createdAt: string; readonly id: string };
  /** Default 10 000. */
  limit?: number;
}

export class MigrationRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
  }

  async insert(m: NewMigration, event: EventInput, now: Date): Promise<MigrationRecord> {
    const at = now.toISOString();
    const row: Insertable<MigrationsTable> = {
      id: m.id,
      issue: m.issue,
      tenant: m.tenant,
      state: 'filed',
      request: JSON.stringify(m.request),
      peak: JSON.stringify(m.request.peak),
      attempts: 0,
      verdict: JSON.stringify(m.verdict),
      filed_by: m.filedBy,
      next_from_step: null,
      next_checkpoint: null,
      next_restore: null,
      failed_step: null,
      held_cause: null,
      held_detail: null,
      checkpoint: null,
      checkpoint_step: null,
      progress_done: null,
      progress_total: null,
      limits_enforced: null,
      snapshot_ref: null,
      snapshot_at: null,
      created_at: at,
      updated_at: at,
    };
    const filedEvent = eventRow(m.id, null, 'filed', event, at);
    const closed = () =>
      new FerryError('FERRY_ISSUE_CLOSED', `issue ${m.issue} is closed; migrations are filed on open issues only (open a new one)`, { issue: m.issue });
    if (this.dialect === 'postgres') {
      // One statement: the row lands only while its issue is not closed, with its event.
      const filed = await this.db
        .with('filed', (q) =>
          q
            .insertInto('migrations')
            .columns(Object.keys(row) as Array<keyof MigrationsTable>)
            .expression(
              q
                .selectNoFrom((eb) => Object.entries(row).map(([column, value]) => eb.val(value).as(column)))
                .where((eb) => eb.not(eb.exists(eb.selectFrom('issues').select('ref').where('ref', '=', m.issue).where('closed_at', 'is not', null)))),
            )
            .returningAll(),
        )
        .with('logged', (q) =>
          q
            .insertInto('events')
            .columns(EVENT_COLUMNS)
            .expression(eventsOf('filed', [filedEvent])),
        )
        .selectFrom('filed')
        .selectAll()
        .executeTakeFirst();
      if (!filed) throw closed();
      return migrationRecord(filed);
    }
    return this.db.transaction().execute(async (trx) => {
      // Checked inside the insert's transaction, so a filing cannot slip past a concurrent closure.
      const issue = await trx.selectFrom('issues').select('closed_at').where('ref', '=', m.issue).executeTakeFirst();
      if (issue?.closed_at) throw closed();
      const filed = await trx.insertInto('migrations').values(row).returningAll().executeTakeFirstOrThrow();
      await trx.insertInto('events').values(filedEvent).execute();
      return migrationRecord(filed);
    });
  }

  async get(id: string): Promise<MigrationRecord | null> {
    const row = await this.db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? migrationRecord(row) : null;
  }

  async list(filter: MigrationFilter): Promise<MigrationRecord[]> {
    let q = this.db.selectFrom('migrations').selectAll();
    if (filter.tenant !== undefined) q = q.where('tenant', '=', filter.tenant);
    if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
    // An empty state list matches nothing; `in ()` is not SQL, so it filters on a state no row has.
    if (filter.state !== undefined) q = q.where('state', 'in', filter.state.length ? [...filter.state] : ['-']);
    if (filter.tenants !== undefined) q = q.where('tenant', 'in', filter.tenants.length ? [...filter.tenants] : ['-']);
    const desc = filter.order === 'desc';
    const after = filter.after;
    if (after !== undefined) {
      // Keyset, not OFFSET: page n costs as much as page 1, and a filing between two pages shifts nothing.
      // A row-value comparison, which both databases seek in the (…, created_at, id) indexes of
      // schema migration 0007; the same test spelt with OR reads every row before the cursor.
      const past = desc ? '<' : '>';
      q = q.where((eb) => eb(eb.refTuple('created_at', 'id'), past, eb.tuple(after.createdAt, after.id)));
    }
    const direction = desc ? 'desc' : 'asc';
    const rows = await q
      .orderBy('created_at', direction)
      .orderBy('id', direction)
      .limit(filter.limit ?? 10_000)
      .execute();
    return rows.map(migrationRecord);
  }

  /** Migrations holding their tenant (core HOLDER_RULE). */
  async listHolders(): Promise<Array<{ id: string; tenant: string; state: MigrationState }>> {
    const rows = await this.db.selectFrom('migrations').select(['id', 'tenant', 'state']).where(holdsItsTenant).execute();
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, state: r.state as MigrationState }));
  }

  /** Queued migrations of the tenants living on `node`, oldest first, with just what the scheduler decides on (no request bodies). */
  async listQueued(node: string): Promise<Array<{ id: string; tenant: string; peak: Resources }>> {
    const rows = await this.db
      .selectFrom('migrations')
      .innerJoin('tenants', 'tenants.id', 'migrations.tenant')
      .select(['migrations.id', 'migrations.tenant', 'migrations.peak'])
      .where('migrations.state', '=', 'queued')
      .where('tenants.node', '=', node)
      .orderBy('migrations.created_at')
      .orderBy('migrations.id')
      .execute();
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, peak: JSON.parse(r.peak) as Resources }));
  }

  /** Running migrations whose current attempt `node` started (all running ones when node is undefined), with their peaks. */
  async listRunning(node?: string): Promise<Array<{ id: string; node: string | null; peak: Resources }>> {
    let q = this.db
      .selectFrom('migrations')
      .innerJoin('attempts', (j) => j.onRef('attempts.migration_id', '=', 'migrations.id').onRef('attempts.number', '=', 'migrations.attempts'))
      .select(['migrations.id', 'migrations.peak', 'attempts.node'])
      .where('migrations.state', '=', 'running');
    if (node !== undefined) q = q.where('attempts.node', '=', node);
    const rows = await q.orderBy('migrations.id').execute();
    return rows.map((r) => ({ id: r.id, node: r.node, peak: JSON.parse(r.peak) as Resources }));
  }

  /** Sum of the declared peaks of the migrations running on `node` (the scheduler's budget in use there). */
  async runningPeaks(node: string): Promise<Record<string, number>> {
    return sumPeaks(await this.listRunning(node));
  }

  /**
   * Change fields of a running migration that are not its state (checkpoint, progress). No event.
   * Nothing once it is not running: a job's late output (after a takeover, say) never rewrites the
   * checkpoint of a held migration an operator is deciding on.
   */
  async update(id: string, patch: MigrationPatch, now: Date): Promise<void> {
    await this.db
      .updateTable('migrations')
      .set({ ...patchColumns(patch), updated_at: now.toISOString() })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .execute();
  }
}

/** The sum, per dimension, of the peaks of `running`. */
export function sumPeaks(running: ReadonlyArray<{ peak: Resources }>): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const r of running) for (const [d, v] of Object.entries(r.peak)) sum[d] = (sum[d] ?? 0) + v;
  return sum;
}
