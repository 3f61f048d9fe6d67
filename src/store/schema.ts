/** Row types of Ferry's tables, as Kysely sees them. Timestamps are ISO-8601 text; JSON is text. */
import type { Generated, Kysely, Transaction } from 'kysely';

export interface TenantsTable {
  id: string;
  steady_state: string;
  data: string;
  run_as_uid: number | null;
  run_as_gid: number | null;
  allow_root: Generated<number>;
  node: string | null;
  placement: string | null;
  adopted_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface MigrationsTable {
  id: string;
  issue: string;
  tenant: string;
  state: string;
  request: string;
  peak: string;
  attempts: number;
  verdict: string;
  filed_by: string;
  next_from_step: number | null;
  next_checkpoint: string | null;
  next_restore: string | null;
  failed_step: number | null;
  held_cause: string | null;
  held_detail: string | null;
  checkpoint: string | null;
  checkpoint_step: number | null;
  progress_done: number | null;
  progress_total: number | null;
  limits_enforced: number | null;
  isolated: number | null;
  snapshot_ref: string | null;
  snapshot_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface AttemptsTable {
  migration_id: string;
  number: number;
  from_step: number;
  step: number | null;
  job_ref: string | null;
  log_ref: string;
  started_at: string;
  ended_at: string | null;
  exit_code: number | null;
  signal: string | null;
  cause: string | null;
  detail: string | null;
  node: string | null;
  taken_over_at: string | null;
  late_outcome_at: string | null;
}

export interface EventsTable {
  id: Generated<number>;
  migration_id: string;
  at: string;
  actor: string;
  kind: string;
  from_state: string | null;
  to_state: string | null;
  reason: string | null;
  detail: string | null;
}

export interface ArtifactsTable {
  id: Generated<number>;
  migration_id: string;
  issue: string;
  kind: string;
  ref: string;
  state: string;
  recorded_at: string;
  created_at: string | null;
  removed_at: string | null;
  node: string | null;
}

/** The nodes of a cluster (one row on SQLite) and their leases. */
export interface NodesTable {
  name: string;
  url: string | null;
  substrate: string;
  capacity: string;
  enforced: string | null;
  tenant_home: string;
  state: string;
  epoch: number;
  started_at: string;
  /** The database's clock at the last renewal, ms since 1970 (PostgreSQL bigint: a string through pg). */
  last_seen_ms: number | string;
  lost_at: string | null;
}

/** The admin token's digest, written by the first node, so that the token works on every node. */
export interface AdminTokensTable {
  name: string;
  sha256: string;
  created_by: string;
  created_at: string;
}

export interface IssuesTable {
  ref: string;
  closed_at: string | null;
  closed_by: string | null;
  teardown_done_at: string | null;
}

/** Webhook deliveries already applied, by the tracker's delivery id (redeliveries are acknowledged, not applied). */
export interface TrackerDeliveriesTable {
  tracker: string;
  delivery_id: string;
  event: string;
  received_at: string;
}

/** What Ferry knows of an engagement thread besides its migrations: its web address. */
export interface TrackerThreadsTable {
  issue: string;
  tracker: string;
  url: string | null;
  updated_at: string;
}

/** Comments waiting to go out (and those sent or given up, kept for a while). */
export interface TrackerOutboxTable {
  id: Generated<number>;
  tracker: string;
  issue: string;
  /** `comment` (posted once) or `status` (the migration's status comment: created once, then edited). */
  kind: string;
  migration_id: string | null;
  /** Unique when set: the same notice is never enqueued twice. */
  dedupe_key: string | null;
  body: string;
  /** Bumped when a pending status row gets a newer body (coalescing). */
  version: number;
  /** `pending` | `sent` | `failed` */
  state: string;
  attempts: number;
  next_at: string;
  last_error: string | null;
  comment_id: string | null;
  created_at: string;
  updated_at: string;
  sent_at: string | null;
}

/** The one status comment of a migration, once created. */
export interface TrackerStatusCommentsTable {
  migration_id: string;
  tracker: string;
  issue: string;
  comment_id: string;
  created_at: string;
}

export interface Database {
  tenants: TenantsTable;
  migrations: MigrationsTable;
  attempts: AttemptsTable;
  events: EventsTable;
  artifacts: ArtifactsTable;
  issues: IssuesTable;
  tracker_deliveries: TrackerDeliveriesTable;
  tracker_threads: TrackerThreadsTable;
  tracker_outbox: TrackerOutboxTable;
  tracker_status_comments: TrackerStatusCommentsTable;
  nodes: NodesTable;
  admin_tokens: AdminTokensTable;
}

/** The Store's handle or one of its transactions: helpers that must also run inside a caller's transaction take either. */
export type Db = Kysely<Database> | Transaction<Database>;
