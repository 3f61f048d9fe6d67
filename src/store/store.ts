/**
 * The Store: Ferry's durable state, one Kysely implementation for SQLite (embedded default) and
 * PostgreSQL (multi-node). Every state change is a compare-and-set that appends an event in the
 * same transaction; losing the race is a typed FERRY_CONFLICT, never a silent overwrite.
 */
import { sql, type ExpressionBuilder, type Kysely, type Selectable, type Transaction } from 'kysely';
import { FerryError } from '../core/errors.ts';
import { HOLDER_RULE, transition, type LifecycleEvent } from '../core/lifecycle.ts';
import type { FailureCause, Identity, MigrationRequest, MigrationState, Resources, Verdict } from '../core/types.ts';
import type { SqlDialect } from './dialect.ts';
import type {
  ArtifactRecord,
  ArtifactState,
  AttemptRecord,
  EventRecord,
  IssueRecord,
  MigrationRecord,
  TenantRecord,
} from './records.ts';
import type { AttemptsTable, Database, MigrationsTable } from './schema.ts';
import { ThreadRecords } from './thread-records.ts';
import { isUniqueViolation, type UniqueIndex } from './unique-violation.ts';

type Db = Kysely<Database> | Transaction<Database>;

export interface EventInput {
  readonly actor: string;
  readonly kind: string;
  readonly reason?: string | null | undefined;
  readonly detail?: unknown;
}

/** The event of a state change: its kind is a lifecycle event, and the transition table decides where it leads. */
export interface TransitionEvent extends EventInput {
  readonly kind: LifecycleEvent;
}

/** Fields of a migration a transition may change alongside its state. */
export interface MigrationPatch {
  attempts?: number;
  verdict?: Verdict;
  next?: MigrationRecord['next'];
  failedStep?: number | null;
  heldCause?: MigrationRecord['heldCause'];
  heldDetail?: string | null;
  checkpoint?: MigrationRecord['checkpoint'];
  progress?: MigrationRecord['progress'];
  limitsEnforced?: boolean | null;
  isolated?: boolean | null;
  snapshot?: MigrationRecord['snapshot'];
}

export interface AttemptPatch {
  step?: number | null;
  jobRef?: string | null;
  endedAt?: string | null;
  exitCode?: number | null;
  signal?: string | null;
  cause?: FailureCause | null;
  detail?: string | null;
}

export interface NewMigration {
  readonly id: string;
  readonly issue: string;
  readonly tenant: string;
  readonly request: MigrationRequest;
  readonly verdict: Verdict;
  readonly filedBy: string;
}

/** Called after a transition commits (issue threads, metrics). Must not throw; errors are swallowed. */
export type TransitionListener = (m: MigrationRecord, from: MigrationState, event: EventInput) => void;

export class Store {
  readonly dialect: SqlDialect;
  /** The tracker tables (deliveries, threads, outbox, status comments). */
  readonly threads: ThreadRecords;
  // Private: every query on Ferry's tables goes through the Store; tests reach past it only through raw-database-for-tests.ts.
  private readonly db: Kysely<Database>;
  private readonly listeners = new Set<TransitionListener>();

  /** Listen to committed transitions; returns the function that stops listening. */
  onTransition(listener: TransitionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
    this.threads = new ThreadRecords(db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // ── tenants ──────────────────────────────────────────────────────────────

  /**
   * Register or update a tenant. Its identity is the given `runAs`, else the one it has, else the next
   * free uid of `uidRange` (gid = uid). Changing `data` or `runAs` while a migration holds the tenant
   * is refused (FERRY_TENANT_BUSY): a wipe or a job would then act on another folder or as another user.
   */
  async putTenant(
    id: string,
    input: { steadyState: Resources; data: string; runAs: Identity | null; allowRoot: boolean },
    uidRange: { first: number; last: number },
    now: Date,
  ): Promise<{ tenant: TenantRecord; created: boolean; previous: TenantRecord | null }> {
    const at = now.toISOString();
    return this.db.transaction().execute(async (trx) => {
      const before = await trx.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
      const previous = before ? tenantRecord(before) : null;
      const runAs = input.runAs ?? previous?.runAs ?? (await allocateIdentity(trx, uidRange));
      const moved = previous !== null && (previous.data !== input.data || previous.runAs?.uid !== runAs.uid || previous.runAs?.gid !== runAs.gid);
      if (moved) {
        const holder = await holderOf(trx, id);
        if (holder) {
          throw new FerryError(
            'FERRY_TENANT_BUSY',
            `tenant ${id} is held by migration ${holder} (${previous.data !== input.data ? 'data' : 'runAs'} cannot change while a migration holds it); finish or abandon that migration first`,
            { tenant: id, holder },
          );
        }
      }
      const sharing = await trx.selectFrom('tenants').select('id').where('run_as_uid', '=', runAs.uid).where('id', '!=', id).executeTakeFirst();
      if (sharing) {
        throw new FerryError('FERRY_CONFLICT', `uid ${runAs.uid} is already tenant ${sharing.id}'s identity; give each tenant its own uid (or omit runAs and Ferry picks one)`, {
          tenant: id,
          uid: runAs.uid,
        });
      }
      const values = {
        steady_state: JSON.stringify(input.steadyState),
        data: input.data,
        run_as_uid: runAs.uid,
        run_as_gid: runAs.gid,
        allow_root: input.allowRoot ? 1 : 0,
        updated_at: at,
      };
      // Upsert: two concurrent PUTs of a new tenant must not collide on the primary key.
      await trx
        .insertInto('tenants')
        .values({ id, ...values, created_at: at })
        .onConflict((oc) => oc.column('id').doUpdateSet(values))
        .execute();
      const row = await trx.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return { tenant: tenantRecord(row), created: !before, previous };
    });
  }

  /** Give an identity from `uidRange` to every tenant registered before identities existed. Returns their ids. */
  async assignMissingIdentities(uidRange: { first: number; last: number }, now: Date): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const missing = await trx.selectFrom('tenants').select('id').where('run_as_uid', 'is', null).orderBy('id').execute();
      for (const { id } of missing) {
        const runAs = await allocateIdentity(trx, uidRange);
        await trx.updateTable('tenants').set({ run_as_uid: runAs.uid, run_as_gid: runAs.gid, updated_at: now.toISOString() }).where('id', '=', id).execute();
      }
      return missing.map((r) => r.id);
    });
  }

  async getTenant(id: string): Promise<TenantRecord | null> {
    const row = await this.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? tenantRecord(row) : null;
  }

  async listTenants(): Promise<TenantRecord[]> {
    const rows = await this.db.selectFrom('tenants').selectAll().orderBy('id').execute();
    return rows.map(tenantRecord);
  }

  // ── issues ───────────────────────────────────────────────────────────────

  async getIssue(ref: string): Promise<IssueRecord | null> {
    const row = await this.db.selectFrom('issues').selectAll().where('ref', '=', ref).executeTakeFirst();
    return row ? issueRecord(row) : null;
  }

  /** Record that an issue is closed. Returns false when it already was (closure is idempotent). */
  async markIssueClosed(ref: string, actor: string, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('issues').selectAll().where('ref', '=', ref).executeTakeFirst();
      if (row?.closed_at) return false;
      // Upsert: a webhook and an API call closing the same issue at once must not collide.
      await trx
        .insertInto('issues')
        .values({ ref, closed_at: now.toISOString(), closed_by: actor, teardown_done_at: null })
        .onConflict((oc) => oc.column('ref').doUpdateSet({ closed_at: now.toISOString(), closed_by: actor, teardown_done_at: null }).where('issues.closed_at', 'is', null))
        .execute();
      return true;
    });
  }

  async markTeardownDone(ref: string, now: Date): Promise<void> {
    await this.db.updateTable('issues').set({ teardown_done_at: now.toISOString() }).where('ref', '=', ref).execute();
  }

  /** Closed issues whose teardown has not finished (a crash in the middle): resumed on start. */
  async issuesPendingTeardown(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('issues')
      .select('ref')
      .where('closed_at', 'is not', null)
      .where('teardown_done_at', 'is', null)
      .execute();
    return rows.map((r) => r.ref);
  }

  // ── migrations ───────────────────────────────────────────────────────────

  async insertMigration(m: NewMigration, event: EventInput, now: Date): Promise<MigrationRecord> {
    const at = now.toISOString();
    return this.db.transaction().execute(async (trx) => {
      // Checked inside the insert's transaction, so a filing cannot slip past a concurrent closure.
      const issue = await trx.selectFrom('issues').select('closed_at').where('ref', '=', m.issue).executeTakeFirst();
      if (issue?.closed_at) {
        throw new FerryError('FERRY_ISSUE_CLOSED', `issue ${m.issue} is closed; migrations are filed on open issues only (open a new one)`, { issue: m.issue });
      }
      await trx
        .insertInto('migrations')
        .values({
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
        })
        .execute();
      await insertEvent(trx, m.id, null, 'filed', event, at);
      return migrationRecord(await trx.selectFrom('migrations').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow());
    });
  }

  async getMigration(id: string): Promise<MigrationRecord | null> {
    const row = await this.db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? migrationRecord(row) : null;
  }

  async requireMigration(id: string): Promise<MigrationRecord> {
    const m = await this.getMigration(id);
    if (!m) throw new FerryError('FERRY_NOT_FOUND', `no migration ${id}; list them with ferry ls`, { id });
    return m;
  }

  async listMigrations(filter: { tenant?: string; state?: readonly MigrationState[]; issue?: string; limit?: number } = {}): Promise<MigrationRecord[]> {
    let q = this.db.selectFrom('migrations').selectAll();
    if (filter.tenant !== undefined) q = q.where('tenant', '=', filter.tenant);
    if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
    if (filter.state !== undefined) q = q.where('state', 'in', filter.state.length ? [...filter.state] : ['-']);
    const rows = await q.orderBy('created_at').orderBy('id').limit(filter.limit ?? 10_000).execute();
    return rows.map(migrationRecord);
  }

  /** Migrations holding their tenant (core HOLDER_RULE). */
  async listHolders(): Promise<Array<{ id: string; tenant: string; state: MigrationState }>> {
    const rows = await this.db
      .selectFrom('migrations')
      .select(['id', 'tenant', 'state'])
      .where(holdsItsTenant)
      .execute();
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, state: r.state as MigrationState }));
  }

  /**
   * Compare-and-set: move migration `id` from `from` to `to`, apply `patch`, append the event.
   * Throws FERRY_CONFLICT (or FERRY_NOT_FOUND) when the migration is not in `from` any more, and
   * FERRY_TENANT_BUSY when the move would give its tenant a second holder.
   */
  async transition(
    args: { id: string; from: MigrationState | readonly MigrationState[]; patch?: MigrationPatch; event: TransitionEvent; now: Date },
    inTrx?: (trx: Transaction<Database>, m: MigrationRecord) => Promise<void>,
  ): Promise<MigrationRecord> {
    return this.transitions({ id: args.id, from: args.from, moves: [{ patch: args.patch, event: args.event }], now: args.now }, inTrx);
  }

  /**
   * Several moves of one migration in one transaction (e.g. filed → approved → queued), each a
   * compare-and-set with its own event. Listeners hear every move once the whole commits.
   */
  async transitions(
    args: {
      id: string;
      from: MigrationState | readonly MigrationState[];
      moves: ReadonlyArray<{ patch?: MigrationPatch | undefined; event: TransitionEvent }>;
      now: Date;
    },
    inTrx?: (trx: Transaction<Database>, m: MigrationRecord) => Promise<void>,
  ): Promise<MigrationRecord> {
    const at = args.now.toISOString();
    const heard: Array<{ from: MigrationState; event: EventInput }> = [];
    try {
      const row = await this.db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('migrations').select('state').where('id', '=', args.id).executeTakeFirst();
        if (!current) throw new FerryError('FERRY_NOT_FOUND', `no migration ${args.id}`, { id: args.id });
        let froms = typeof args.from === 'string' ? [args.from] : [...args.from];
        let state = current.state as MigrationState;
        for (const move of args.moves) {
          const conflict = () =>
            new FerryError('FERRY_CONFLICT', `migration ${args.id} is ${state}, not ${froms.join(' or ')}; it changed meanwhile, reload it and decide again`, {
              id: args.id,
              state,
              expected: froms,
            });
          if (!froms.includes(state)) throw conflict();
          // The one transition table decides where the event leads, and refuses an illegal one.
          const to = transition(state, move.event.kind);
          const result = await trx
            .updateTable('migrations')
            .set({ state: to, updated_at: at, ...patchColumns(move.patch ?? {}) })
            .where('id', '=', args.id)
            .where('state', '=', state)
            .executeTakeFirst();
          if (Number(result.numUpdatedRows) !== 1) throw conflict();
          await insertEvent(trx, args.id, state, to, move.event, at);
          heard.push({ from: state, event: move.event });
          state = to;
          froms = [to];
        }
        const updated = migrationRecord(await trx.selectFrom('migrations').selectAll().where('id', '=', args.id).executeTakeFirstOrThrow());
        if (inTrx) await inTrx(trx, updated);
        return updated;
      });
      for (const { from, event } of heard) {
        for (const listener of this.listeners) {
          try {
            listener(row, from, event);
          } catch {
            // a listener's failure never undoes or blocks a transition
          }
        }
      }
      return row;
    } catch (err) {
      if (isUniqueViolation(err, ONE_HOLDER_PER_TENANT)) {
        throw new FerryError('FERRY_TENANT_BUSY', `the tenant of migration ${args.id} is held by another migration; it waits until that one is final`, { id: args.id }, { cause: err });
      }
      throw err;
    }
  }

  /** queued → running as attempt `number`, with the attempt row, in one transaction. */
  async startAttempt(args: {
    id: string;
    number: number;
    fromStep: number;
    logRef: string;
    limitsEnforced: boolean;
    isolated: boolean;
    verdict: Verdict;
    /** Its reason and detail; the kind is always `start`. */
    event: Omit<EventInput, 'kind'>;
    now: Date;
    /** The first step's job, recorded on the attempt before it is started. */
    firstJob?: { step: number; ref: string };
    /** Artifacts the attempt will create (log, scratch, snapshot, first job): recorded here, before any is created. */
    artifacts?: ReadonlyArray<{ kind: string; ref: string }>;
  }): Promise<{ migration: MigrationRecord; artifacts: ArtifactRecord[] }> {
    let artifacts: ArtifactRecord[] = [];
    const migration = await this.transition(
      {
        id: args.id,
        from: 'queued',
        patch: { attempts: args.number, limitsEnforced: args.limitsEnforced, isolated: args.isolated, verdict: args.verdict, heldCause: null, heldDetail: null, failedStep: null, progress: null },
        event: { ...args.event, kind: 'start' },
        now: args.now,
      },
      async (trx, m) => {
        if (m.attempts !== args.number) throw new FerryError('FERRY_CONFLICT', `migration ${args.id} attempt numbering changed meanwhile`);
        await trx
          .insertInto('attempts')
          .values({
            migration_id: args.id,
            number: args.number,
            from_step: args.fromStep,
            step: args.firstJob?.step ?? null,
            job_ref: args.firstJob?.ref ?? null,
            log_ref: args.logRef,
            started_at: args.now.toISOString(),
            ended_at: null,
            exit_code: null,
            signal: null,
            cause: null,
            detail: null,
          })
          .execute();
        artifacts = [];
        for (const a of args.artifacts ?? []) artifacts.push(await recordArtifactIn(trx, { migrationId: m.id, issue: m.issue, ...a }, args.now));
      },
    );
    return { migration, artifacts };
  }

  /** A later step of a running attempt: its job recorded (intent) and set on the attempt, in one transaction. */
  async beginStep(args: { migrationId: string; issue: string; number: number; step: number; ref: string; now: Date }): Promise<ArtifactRecord> {
    return this.db.transaction().execute(async (trx) => {
      const artifact = await recordArtifactIn(trx, { migrationId: args.migrationId, issue: args.issue, kind: 'job', ref: args.ref }, args.now);
      await trx
        .updateTable('attempts')
        .set({ step: args.step, job_ref: args.ref })
        .where('migration_id', '=', args.migrationId)
        .where('number', '=', args.number)
        .execute();
      return artifact;
    });
  }

  /** Mark artifacts created (and optionally change the migration, e.g. its snapshot), in one transaction. */
  async markCreated(ids: readonly number[], now: Date, migration?: { id: string; patch: MigrationPatch }): Promise<void> {
    if (ids.length === 0 && !migration) return;
    const at = now.toISOString();
    await this.db.transaction().execute(async (trx) => {
      if (ids.length) await trx.updateTable('artifacts').set({ state: 'created', created_at: at }).where('id', 'in', [...ids]).where('state', '=', 'intended').execute();
      if (migration) await trx.updateTable('migrations').set({ ...patchColumns(migration.patch), updated_at: at }).where('id', '=', migration.id).execute();
    });
  }

  /** Queued migrations, oldest first, with just what the scheduler decides on (no request bodies). */
  async listQueued(): Promise<Array<{ id: string; tenant: string; peak: Resources }>> {
    const rows = await this.db.selectFrom('migrations').select(['id', 'tenant', 'peak']).where('state', '=', 'queued').orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, peak: JSON.parse(r.peak) as Resources }));
  }

  /** Sum of the declared peaks of running migrations (the scheduler's budget in use). */
  async runningPeaks(): Promise<Record<string, number>> {
    const rows = await this.db.selectFrom('migrations').select('peak').where('state', '=', 'running').execute();
    const sum: Record<string, number> = {};
    for (const r of rows) for (const [d, v] of Object.entries(JSON.parse(r.peak) as Resources)) sum[d] = (sum[d] ?? 0) + v;
    return sum;
  }

  /** End attempt `number` and move its migration out of `running`, in one transaction. */
  /** End the running attempt: its event (`succeed`, `fail`, `cancel`) decides the migration's next state. */
  async finishAttempt(args: {
    id: string;
    number: number;
    attempt: AttemptPatch;
    patch?: MigrationPatch;
    event: TransitionEvent;
    now: Date;
  }): Promise<MigrationRecord> {
    return this.transition({ id: args.id, from: 'running', patch: args.patch ?? {}, event: args.event, now: args.now }, async (trx) => {
      await trx
        .updateTable('attempts')
        .set(attemptColumns({ ...args.attempt, endedAt: args.now.toISOString() }))
        .where('migration_id', '=', args.id)
        .where('number', '=', args.number)
        .execute();
    });
  }

  /** Change fields that are not the state (checkpoint, progress, snapshot). No event. */
  async updateMigration(id: string, patch: MigrationPatch, now: Date): Promise<void> {
    await this.db
      .updateTable('migrations')
      .set({ ...patchColumns(patch), updated_at: now.toISOString() })
      .where('id', '=', id)
      .execute();
  }

  async appendEvent(migrationId: string, state: MigrationState, event: EventInput, now: Date): Promise<void> {
    await insertEvent(this.db, migrationId, state, state, event, now.toISOString());
  }

  // ── attempts and events ──────────────────────────────────────────────────

  async updateAttempt(migrationId: string, number: number, patch: AttemptPatch): Promise<void> {
    const set = attemptColumns(patch);
    if (Object.keys(set).length === 0) return;
    await this.db.updateTable('attempts').set(set).where('migration_id', '=', migrationId).where('number', '=', number).execute();
  }

  async listAttempts(migrationId: string): Promise<AttemptRecord[]> {
    const rows = await this.db.selectFrom('attempts').selectAll().where('migration_id', '=', migrationId).orderBy('number').execute();
    return rows.map(attemptRecord);
  }

  async getAttempt(migrationId: string, number: number): Promise<AttemptRecord | null> {
    const row = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('migration_id', '=', migrationId)
      .where('number', '=', number)
      .executeTakeFirst();
    return row ? attemptRecord(row) : null;
  }

  async listEvents(migrationId: string): Promise<EventRecord[]> {
    const rows = await this.db.selectFrom('events').selectAll().where('migration_id', '=', migrationId).orderBy('id').execute();
    return rows.map((r) => ({
      id: Number(r.id),
      migrationId: r.migration_id,
      at: r.at,
      actor: r.actor,
      kind: r.kind,
      from: r.from_state as MigrationState | null,
      to: r.to_state as MigrationState | null,
      reason: r.reason,
      detail: r.detail === null ? null : JSON.parse(r.detail),
    }));
  }

  // ── artifacts ────────────────────────────────────────────────────────────

  /** Record an artifact before it is created (intent first). Idempotent per (kind, ref). */
  async recordArtifact(a: { migrationId: string; issue: string; kind: string; ref: string }, now: Date): Promise<ArtifactRecord> {
    return recordArtifactIn(this.db, a, now);
  }

  async markArtifact(id: number, state: Exclude<ArtifactState, 'intended'>, now: Date): Promise<void> {
    const at = now.toISOString();
    await this.db
      .updateTable('artifacts')
      .set(state === 'created' ? { state, created_at: at } : { state, removed_at: at })
      .where('id', '=', id)
      .execute();
  }

  async listArtifacts(filter: { migrationId?: string; issue?: string; present?: boolean }): Promise<ArtifactRecord[]> {
    let q = this.db.selectFrom('artifacts').selectAll();
    if (filter.migrationId !== undefined) q = q.where('migration_id', '=', filter.migrationId);
    if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
    if (filter.present) q = q.where('state', '!=', 'removed');
    const rows = await q.orderBy('id').execute();
    return rows.map(artifactRecord);
  }

  /** Storage engine self-check (SQLite integrity_check; PostgreSQL answers a query). */
  async integrityCheck(): Promise<string> {
    if (this.dialect === 'sqlite') {
      const r = await sql<{ integrity_check: string }>`PRAGMA integrity_check`.execute(this.db);
      return r.rows.map((row) => row.integrity_check).join('; ');
    }
    await sql`SELECT 1`.execute(this.db);
    return 'ok';
  }
}

/** Record an artifact's intent; idempotent per (kind, ref): the existing record is returned. */
async function recordArtifactIn(db: Db, a: { migrationId: string; issue: string; kind: string; ref: string }, now: Date): Promise<ArtifactRecord> {
  const existing = await db.selectFrom('artifacts').selectAll().where('kind', '=', a.kind).where('ref', '=', a.ref).executeTakeFirst();
  if (existing) return artifactRecord(existing);
  await db
    .insertInto('artifacts')
    .values({ migration_id: a.migrationId, issue: a.issue, kind: a.kind, ref: a.ref, state: 'intended', recorded_at: now.toISOString(), created_at: null, removed_at: null })
    .execute();
  return artifactRecord(await db.selectFrom('artifacts').selectAll().where('kind', '=', a.kind).where('ref', '=', a.ref).executeTakeFirstOrThrow());
}

async function insertEvent(db: Db, migrationId: string, from: MigrationState | null, to: MigrationState | null, e: EventInput, at: string): Promise<void> {
  await db
    .insertInto('events')
    .values({
      migration_id: migrationId,
      at,
      actor: e.actor,
      kind: e.kind,
      from_state: from,
      to_state: to,
      reason: e.reason ?? null,
      detail: e.detail === undefined ? null : JSON.stringify(e.detail),
    })
    .execute();
}

function attemptColumns(patch: AttemptPatch): Partial<AttemptsTable> {
  const set: Partial<AttemptsTable> = {};
  if (patch.step !== undefined) set.step = patch.step;
  if (patch.jobRef !== undefined) set.job_ref = patch.jobRef;
  if (patch.endedAt !== undefined) set.ended_at = patch.endedAt;
  if (patch.exitCode !== undefined) set.exit_code = patch.exitCode;
  if (patch.signal !== undefined) set.signal = patch.signal;
  if (patch.cause !== undefined) set.cause = patch.cause;
  if (patch.detail !== undefined) set.detail = patch.detail;
  return set;
}

function patchColumns(p: MigrationPatch): Partial<MigrationsTable> {
  const set: Partial<MigrationsTable> = {};
  if (p.attempts !== undefined) set.attempts = p.attempts;
  if (p.verdict !== undefined) set.verdict = JSON.stringify(p.verdict);
  if (p.next !== undefined) {
    set.next_from_step = p.next?.fromStep ?? null;
    set.next_checkpoint = p.next?.checkpoint ?? null;
    set.next_restore = p.next?.restore ?? null;
  }
  if (p.failedStep !== undefined) set.failed_step = p.failedStep;
  if (p.heldCause !== undefined) set.held_cause = p.heldCause;
  if (p.heldDetail !== undefined) set.held_detail = p.heldDetail;
  if (p.checkpoint !== undefined) {
    set.checkpoint = p.checkpoint?.text ?? null;
    set.checkpoint_step = p.checkpoint?.step ?? null;
  }
  if (p.progress !== undefined) {
    set.progress_done = p.progress?.done ?? null;
    set.progress_total = p.progress?.total ?? null;
  }
  if (p.isolated !== undefined) set.isolated = p.isolated === null ? null : p.isolated ? 1 : 0;
  if (p.limitsEnforced !== undefined) set.limits_enforced = p.limitsEnforced === null ? null : p.limitsEnforced ? 1 : 0;
  if (p.snapshot !== undefined) {
    set.snapshot_ref = p.snapshot?.ref ?? null;
    set.snapshot_at = p.snapshot?.at ?? null;
  }
  return set;
}

// `migrations.tenant` is unique only through this partial index, so SQLite's column name identifies it.
const ONE_HOLDER_PER_TENANT: UniqueIndex = { name: 'one_holder_per_tenant', sqliteColumns: 'migrations.tenant' };

function migrationRecord(r: Selectable<MigrationsTable>): MigrationRecord {
  return {
    id: r.id,
    issue: r.issue,
    tenant: r.tenant,
    state: r.state as MigrationState,
    request: JSON.parse(r.request) as MigrationRequest,
    peak: JSON.parse(r.peak) as Resources,
    attempts: Number(r.attempts),
    verdict: JSON.parse(r.verdict) as Verdict,
    filedBy: r.filed_by,
    next:
      r.next_from_step === null
        ? null
        : { fromStep: Number(r.next_from_step), checkpoint: r.next_checkpoint, restore: r.next_restore as 'snapshot' | 'wipe-step' | null },
    failedStep: r.failed_step === null ? null : Number(r.failed_step),
    heldCause: r.held_cause as MigrationRecord['heldCause'],
    heldDetail: r.held_detail,
    checkpoint: r.checkpoint === null ? null : { step: Number(r.checkpoint_step), text: r.checkpoint },
    progress: r.progress_done === null ? null : { done: Number(r.progress_done), total: Number(r.progress_total) },
    limitsEnforced: r.limits_enforced === null ? null : Number(r.limits_enforced) === 1,
    isolated: r.isolated === null ? null : Number(r.isolated) === 1,
    snapshot: r.snapshot_ref === null ? null : { ref: r.snapshot_ref, at: r.snapshot_at ?? '' },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function attemptRecord(r: Selectable<AttemptsTable>): AttemptRecord {
  return {
    migrationId: r.migration_id,
    number: Number(r.number),
    fromStep: Number(r.from_step),
    step: r.step === null ? null : Number(r.step),
    jobRef: r.job_ref,
    logRef: r.log_ref,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    signal: r.signal,
    cause: r.cause as FailureCause | null,
    detail: r.detail,
  };
}

function tenantRecord(r: Selectable<Database['tenants']>): TenantRecord {
  return {
    id: r.id,
    steadyState: JSON.parse(r.steady_state) as Resources,
    data: r.data,
    runAs: r.run_as_uid === null ? null : { uid: Number(r.run_as_uid), gid: Number(r.run_as_gid ?? r.run_as_uid) },
    allowRoot: Number(r.allow_root) === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The next uid of the range after the highest one given (gid = uid); FERRY_CONFLICT when the range is used up. */
async function allocateIdentity(trx: Db, range: { first: number; last: number }): Promise<Identity> {
  const row = await trx
    .selectFrom('tenants')
    .select((eb) => eb.fn.max('run_as_uid').as('top'))
    .where('run_as_uid', '>=', range.first)
    .where('run_as_uid', '<=', range.last)
    .executeTakeFirst();
  const top = row?.top === null || row?.top === undefined ? null : Number(row.top);
  const uid = top === null ? range.first : top + 1;
  if (uid > range.last) {
    throw new FerryError('FERRY_CONFLICT', `every uid of the range ${range.first}-${range.last} is given to a tenant; widen uidRange or give this tenant a runAs`);
  }
  return { uid, gid: uid };
}

/** Core's HOLDER_RULE as a filter on migrations. */
function holdsItsTenant(eb: ExpressionBuilder<Database, 'migrations'>) {
  return eb.or([eb('state', 'in', [...HOLDER_RULE.always]), eb.and([eb('state', 'in', [...HOLDER_RULE.afterAnAttempt]), eb('attempts', '>', 0)])]);
}

/** The migration holding `tenant`, if any. */
async function holderOf(trx: Db, tenant: string): Promise<string | null> {
  const row = await trx
    .selectFrom('migrations')
    .select('id')
    .where('tenant', '=', tenant)
    .where(holdsItsTenant)
    .executeTakeFirst();
  return row?.id ?? null;
}

function issueRecord(r: Selectable<Database['issues']>): IssueRecord {
  return { ref: r.ref, closedAt: r.closed_at, closedBy: r.closed_by, teardownDoneAt: r.teardown_done_at };
}

function artifactRecord(r: Selectable<Database['artifacts']>): ArtifactRecord {
  return {
    id: Number(r.id),
    migrationId: r.migration_id,
    issue: r.issue,
    kind: r.kind,
    ref: r.ref,
    state: r.state as ArtifactState,
    recordedAt: r.recorded_at,
    createdAt: r.created_at,
    removedAt: r.removed_at,
  };
}
