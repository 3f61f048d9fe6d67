/**
 * The Store: Ferry's durable state, one Kysely implementation for SQLite (embedded default) and
 * PostgreSQL (multi-node), and the one object the rest of the code uses. Every state change is a
 * compare-and-set that appends an event in the same transaction; losing the race is a typed
 * FERRY_CONFLICT, never a silent overwrite.
 *
 * The Store is a façade: each kind of record has its own file built on the same Kysely handle
 * (tenant-records.ts, issue-records.ts, migration-records.ts, migration-transitions.ts,
 * attempt-records.ts, event-records.ts, artifact-records.ts; row-records.ts maps rows both ways).
 * A write that must land with another is one method of one of them, so callers never hold a
 * transaction, except the `inTrx` of a transition.
 */
import type { Kysely } from 'kysely';
import { FerryError } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import { AdminTokenRecords } from './admin-token-records.ts';
import type { MigrationState, Resources } from '../core/types.ts';
import { ArtifactRecords, type ArtifactFilter } from './artifact-records.ts';
import { AttemptRecords, type BeginStepArgs } from './attempt-records.ts';
import type { SqlDialect } from './dialect.ts';
import { EventRecords, type EventInput } from './event-records.ts';
import { IssueRecords } from './issue-records.ts';
import { MigrationRecords, type MigrationFilter, type NewMigration } from './migration-records.ts';
import {
  MigrationTransitions,
  type InTransition,
  type TransitionArgs,
  type TransitionEvent,
  type TransitionListener,
  type TransitionsArgs,
} from './migration-transitions.ts';
import { AttemptMoves, type FinishAttemptArgs, type StartAttemptArgs, type StartedAttempt } from './attempt-moves.ts';
import { NodeRecords, type LateOutcome, type NodeRegistration, type TakenOverNode } from './node-records.ts';
import { openPostgresSession, sqliteSession, type NodeSession, type PostgresTarget } from './node-session.ts';
import type {
  ArtifactRecord,
  ArtifactState,
  AttemptRecord,
  EventRecord,
  IssueRecord,
  MigrationRecord,
  NodeLease,
  NodeRecord,
  TenantRecord,
} from './records.ts';
import type { AttemptPatch, MigrationPatch } from './row-records.ts';
import type { Database } from './schema.ts';
import { TenantRecords, type TenantInput, type UidRange } from './tenant-records.ts';
import { ThreadRecords } from './thread-records.ts';

export type {
  AttemptPatch,
  EventInput,
  LateOutcome,
  MigrationPatch,
  NewMigration,
  NodeRegistration,
  NodeSession,
  TakenOverNode,
  TransitionEvent,
  TransitionListener,
};

export class Store {
  readonly dialect: SqlDialect;
  /** The tracker tables (deliveries, threads, outbox, status comments). */
  readonly threads: ThreadRecords;
  // Private: every query on Ferry's tables goes through the Store; tests reach past it only through raw-database-for-tests.ts.
  private readonly db: Kysely<Database>;
  private readonly tenants: TenantRecords;
  private readonly issues: IssueRecords;
  private readonly migrations: MigrationRecords;
  private readonly moves: MigrationTransitions;
  private readonly attempts: AttemptRecords;
  private readonly attemptMoves: AttemptMoves;
  private readonly events: EventRecords;
  private readonly artifacts: ArtifactRecords;
  private readonly nodes: NodeRecords;
  private readonly adminTokens: AdminTokenRecords;
  private readonly postgres: PostgresTarget | null;

  constructor(db: Kysely<Database>, dialect: SqlDialect, postgres: PostgresTarget | null = null) {
    this.db = db;
    this.dialect = dialect;
    this.postgres = postgres;
    this.threads = new ThreadRecords(db, dialect);
    this.tenants = new TenantRecords(db, dialect);
    this.migrations = new MigrationRecords(db, dialect);
    this.moves = new MigrationTransitions(db, dialect);
    this.issues = new IssueRecords(db, dialect, this.moves.origin);
    this.attempts = new AttemptRecords(db, dialect);
    this.attemptMoves = new AttemptMoves(db, dialect, this.moves);
    this.events = new EventRecords(db);
    this.artifacts = new ArtifactRecords(db, dialect);
    this.nodes = new NodeRecords(db, dialect, this.moves);
    this.adminTokens = new AdminTokenRecords(db);
  }

  /** Listen to committed transitions of this store; returns the function that stops listening. */
  onTransition(listener: TransitionListener): () => void {
    return this.moves.onTransition(listener);
  }

  /** Listen to transitions other nodes committed (PostgreSQL; announced through their notices). */
  onRemoteTransition(listener: (m: MigrationRecord) => void): () => void {
    return this.moves.onRemoteTransition(listener);
  }

  /** Whether a notice came from this store (this node) itself. */
  isOwnNotice(origin: string | undefined): boolean {
    return origin === this.moves.origin;
  }

  /** A notice said a migration moved: when another store (node) moved it, tell the remote listeners. */
  async noticeMoved(id: string, origin: string): Promise<void> {
    if (origin !== this.moves.origin) await this.moves.announceRemote(id);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // ── tenants (tenant-records.ts) ──────────────────────────────────────────

  /** Register or update a tenant, allocating its identity; FERRY_TENANT_BUSY when a held tenant's data or runAs would change. */
  putTenant(id: string, input: TenantInput, uidRange: UidRange, now: Date): Promise<{ tenant: TenantRecord; created: boolean; previous: TenantRecord | null }> {
    return this.tenants.put(id, input, uidRange, now);
  }

  /** Give an identity from `uidRange` to every tenant registered before identities existed. Returns their ids. */
  assignMissingIdentities(uidRange: UidRange, now: Date): Promise<string[]> {
    return this.tenants.assignMissingIdentities(uidRange, now);
  }

  getTenant(id: string): Promise<TenantRecord | null> {
    return this.tenants.get(id);
  }

  listTenants(): Promise<TenantRecord[]> {
    return this.tenants.list();
  }

  /** Record that its node handed the tenant's data to its identity, unless the tenant changed since `seen` (its updatedAt). */
  markTenantAdopted(id: string, seen: string, now: Date): Promise<void> {
    return this.tenants.markAdopted(id, seen, now);
  }

  /** Tenants living on `node` whose data it has not handed to their identity yet. */
  listUnadoptedTenants(node: string): Promise<TenantRecord[]> {
    return this.tenants.listUnadopted(node);
  }

  // ── nodes (node-records.ts, node-session.ts, admin-token-records.ts) ─────

  /** Register (or re-register) a node with a new lease epoch; FERRY_NODE_TAKEN on SQLite that belongs to another node. */
  registerNode(r: NodeRegistration): Promise<{ lease: NodeLease; previous: NodeRecord | null }> {
    return this.nodes.register(r);
  }

  setNodeUrl(lease: NodeLease, url: string): Promise<void> {
    return this.nodes.setUrl(lease, url);
  }

  /** Renew a node's lease; false when the lease is no longer current (taken over). */
  renewNodeLease(lease: NodeLease): Promise<boolean> {
    return this.nodes.renew(lease);
  }

  leaveNode(lease: NodeLease): Promise<void> {
    return this.nodes.leave(lease);
  }

  listNodes(): Promise<NodeRecord[]> {
    return this.nodes.list();
  }

  getNode(name: string): Promise<NodeRecord | null> {
    return this.nodes.get(name);
  }

  /** Mark nodes whose lease ran out `lost` and hold their running migrations with cause `lost` (see node-records.ts). */
  takeOverLostNodes(self: NodeLease, lostAfterMs: number, now: Date): Promise<TakenOverNode[]> {
    return this.nodes.takeOverLost(self, lostAfterMs, now);
  }

  /** Attempts of `node` another node took over, whose job's real outcome is not recorded yet. */
  listTakenOverAttempts(node: string): Promise<AttemptRecord[]> {
    return this.nodes.listTakenOver(node);
  }

  /** Record what a taken-over attempt's job really did, as an event; the migration's state is unchanged. */
  recordLateOutcome(lease: NodeLease, migrationId: string, number: number, outcome: LateOutcome, now: Date): Promise<boolean> {
    return this.nodes.recordLateOutcome(lease, migrationId, number, outcome, now);
  }

  /** The node's own session: its lock (one process per node), notices from the other nodes, the outbox sender's role. */
  openNodeSession(node: string, onTaken: (err: FerryError) => void, log: LogFn): Promise<NodeSession> {
    return this.postgres ? openPostgresSession(this.postgres, node, onTaken, log) : Promise.resolve(sqliteSession());
  }

  /** The admin token's digest and the node that made it, or null before any node did. */
  adminToken(): Promise<{ sha256: string; createdBy: string } | null> {
    return this.adminTokens.get();
  }

  /** Replace the admin token's digest (rotated by the node that made it). */
  replaceAdminToken(sha256: string, node: string, now: Date): Promise<void> {
    return this.adminTokens.replace(sha256, node, now);
  }

  /** Record `sha256` as the admin token's digest unless one is recorded already; returns the one recorded. */
  claimAdminToken(sha256: string, node: string, now: Date): Promise<string> {
    return this.adminTokens.claim(sha256, node, now);
  }

  // ── issues (issue-records.ts) ────────────────────────────────────────────

  getIssue(ref: string): Promise<IssueRecord | null> {
    return this.issues.get(ref);
  }

  /** Record that an issue is closed. Returns false when it already was (closure is idempotent). */
  markIssueClosed(ref: string, actor: string, now: Date): Promise<boolean> {
    return this.issues.markClosed(ref, actor, now);
  }

  /** Mark the issue's teardown done if no artifact of it is left on any node; returns whether it is. */
  markTeardownDoneIfClear(ref: string, now: Date): Promise<boolean> {
    return this.issues.markTeardownDoneIfClear(ref, now);
  }

  /** Closed issues whose teardown has not finished (a crash in the middle): resumed on start. */
  issuesPendingTeardown(): Promise<string[]> {
    return this.issues.pendingTeardown();
  }

  // ── migrations (migration-records.ts) ────────────────────────────────────

  /** File a migration in `filed`, with its event; FERRY_ISSUE_CLOSED when its issue is closed. */
  insertMigration(m: NewMigration, event: EventInput, now: Date): Promise<MigrationRecord> {
    return this.migrations.insert(m, event, now);
  }

  getMigration(id: string): Promise<MigrationRecord | null> {
    return this.migrations.get(id);
  }

  async requireMigration(id: string): Promise<MigrationRecord> {
    const m = await this.getMigration(id);
    if (!m) throw new FerryError('FERRY_NOT_FOUND', `no migration ${id}; list them with ferry ls`, { id });
    return m;
  }

  listMigrations(filter: MigrationFilter = {}): Promise<MigrationRecord[]> {
    return this.migrations.list(filter);
  }

  /** Migrations holding their tenant (core HOLDER_RULE). */
  listHolders(): Promise<Array<{ id: string; tenant: string; state: MigrationState }>> {
    return this.migrations.listHolders();
  }

  /** Queued migrations of the tenants living on `node`, oldest first, with just what the scheduler decides on (no request bodies). */
  listQueued(node: string): Promise<Array<{ id: string; tenant: string; peak: Resources }>> {
    return this.migrations.listQueued(node);
  }

  /** Sum of the declared peaks of the migrations running on `node` (the scheduler's budget in use there). */
  runningPeaks(node: string): Promise<Record<string, number>> {
    return this.migrations.runningPeaks(node);
  }

  /** Running migrations with the node of their current attempt (only `node`'s when given). */
  listRunning(node?: string): Promise<Array<{ id: string; node: string | null; peak: Resources }>> {
    return this.migrations.listRunning(node);
  }

  /** Change fields of a running migration that are not its state (checkpoint, progress). No event; nothing once it is not running. */
  updateMigration(id: string, patch: MigrationPatch, now: Date): Promise<void> {
    return this.migrations.update(id, patch, now);
  }

  // ── transitions (migration-transitions.ts) ───────────────────────────────

  /**
   * Compare-and-set: move migration `id` from `from` by its event, apply `patch`, append the event.
   * Throws FERRY_CONFLICT (or FERRY_NOT_FOUND) when the migration is not in `from` any more, and
   * FERRY_TENANT_BUSY when the move would give its tenant a second holder.
   */
  transition(args: TransitionArgs, inTrx?: InTransition): Promise<MigrationRecord> {
    return this.moves.transition(args, inTrx);
  }

  /** Several moves of one migration in one transaction, each a compare-and-set with its own event. */
  transitions(args: TransitionsArgs, inTrx?: InTransition): Promise<MigrationRecord> {
    return this.moves.transitions(args, inTrx);
  }

  /** queued → running as attempt `number`, with the attempt row and its artifacts' intents, in one transaction. */
  startAttempt(args: StartAttemptArgs): Promise<StartedAttempt> {
    return this.attemptMoves.start(args);
  }

  /** End the running attempt: its event (`succeed`, `fail`, `cancel`) decides the migration's next state. */
  finishAttempt(args: FinishAttemptArgs): Promise<MigrationRecord> {
    return this.attemptMoves.finish(args);
  }

  // ── attempts and events (attempt-records.ts, event-records.ts) ───────────

  /** A later step of a running attempt: its job recorded (intent) and set on the attempt, in one transaction. */
  beginStep(args: BeginStepArgs): Promise<ArtifactRecord> {
    return this.attempts.beginStep(args);
  }

  listAttempts(migrationId: string): Promise<AttemptRecord[]> {
    return this.attempts.list(migrationId);
  }

  getAttempt(migrationId: string, number: number): Promise<AttemptRecord | null> {
    return this.attempts.get(migrationId, number);
  }

  /** An event that changes no state. */
  appendEvent(migrationId: string, state: MigrationState, event: EventInput, now: Date): Promise<void> {
    return this.events.append(migrationId, state, event, now);
  }

  listEvents(migrationId: string): Promise<EventRecord[]> {
    return this.events.list(migrationId);
  }

  // ── artifacts (artifact-records.ts) ──────────────────────────────────────

  /** Mark artifacts created (and optionally change the migration, e.g. its snapshot), in one transaction. */
  markCreated(ids: readonly number[], now: Date, migration?: { id: string; patch: MigrationPatch }): Promise<void> {
    return this.artifacts.markCreated(ids, now, migration);
  }

  markArtifact(id: number, state: Exclude<ArtifactState, 'intended'>, now: Date): Promise<void> {
    return this.artifacts.mark(id, state, now);
  }

  listArtifacts(filter: ArtifactFilter): Promise<ArtifactRecord[]> {
    return this.artifacts.list(filter);
  }
}
