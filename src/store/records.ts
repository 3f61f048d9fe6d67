/** What the store hands out: rows with their JSON parsed and flags as booleans. */
import type { FailureCause, Identity, MigrationRequest, MigrationState, Resources, Verdict } from '../core/types.ts';

export interface MigrationRecord {
  readonly id: string;
  readonly issue: string;
  readonly tenant: string;
  readonly state: MigrationState;
  readonly request: MigrationRequest;
  readonly peak: Resources;
  /** Attempts started so far. */
  readonly attempts: number;
  /** The latest verdict of admit(), with the steady-state it was computed from. */
  readonly verdict: Verdict;
  readonly filedBy: string;
  /** Set by a recovery action: where the next attempt starts and how tenant data is restored first. */
  readonly next: { readonly fromStep: number; readonly checkpoint: string | null; readonly restore: 'snapshot' | 'wipe-step' | null } | null;
  readonly failedStep: number | null;
  readonly heldCause: FailureCause | 'gate' | null;
  readonly heldDetail: string | null;
  readonly checkpoint: { readonly step: number; readonly text: string } | null;
  readonly progress: { readonly done: number; readonly total: number } | null;
  readonly limitsEnforced: boolean | null;
  /** Whether the latest attempt ran confined to its tenant (own identity, view, environment); null before any. */
  readonly isolated: boolean | null;
  readonly snapshot: { readonly ref: string; readonly at: string } | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AttemptRecord {
  readonly migrationId: string;
  readonly number: number;
  readonly fromStep: number;
  /** The step running now or last run; null before the first step started. */
  readonly step: number | null;
  readonly jobRef: string | null;
  readonly logRef: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly cause: FailureCause | null;
  readonly detail: string | null;
  /** The node that started the attempt: only it re-attaches to its jobs and records their outcome. Null: before nodes existed. */
  readonly node: string | null;
  /** When another node held the attempt `lost` because its node's lease ran out; its job may have lived on. */
  readonly takenOverAt: string | null;
  /** When the attempt's node, back, recorded what its job really did after the takeover. */
  readonly lateOutcomeAt: string | null;
}

export interface EventRecord {
  readonly id: number;
  readonly migrationId: string;
  readonly at: string;
  readonly actor: string;
  readonly kind: string;
  readonly from: MigrationState | null;
  readonly to: MigrationState | null;
  readonly reason: string | null;
  readonly detail: unknown;
}

export type ArtifactState = 'intended' | 'created' | 'removed';

export interface ArtifactRecord {
  readonly id: number;
  readonly migrationId: string;
  readonly issue: string;
  readonly kind: string;
  readonly ref: string;
  readonly state: ArtifactState;
  readonly recordedAt: string;
  readonly createdAt: string | null;
  readonly removedAt: string | null;
  /** The node the artifact lives on (only it removes it); null: recorded before nodes existed. */
  readonly node: string | null;
}

export interface TenantRecord {
  readonly id: string;
  readonly steadyState: Resources;
  readonly data: string;
  /** Null only for a tenant registered before identities existed, until the next start gives it one. */
  readonly runAs: Identity | null;
  readonly allowRoot: boolean;
  /** The node the tenant lives on: its jobs, data, scratch, snapshots and logs are there. */
  readonly node: string | null;
  /** Where its jobs are placed on a substrate spanning hosts (swarm: a node name, id or constraint); null: the default. */
  readonly placement: string | null;
  /** When its data was last handed to its identity on its node; null: its node still has to. */
  readonly adoptedAt: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface IssueRecord {
  readonly ref: string;
  readonly closedAt: string | null;
  readonly closedBy: string | null;
  readonly teardownDoneAt: string | null;
}

export type NodeState = 'up' | 'lost' | 'left';

/** A node's rules for its tenants' data: the substrate, the default folder of tenant data (process), and Ferry's own paths there. */
export interface TenantHome {
  readonly substrate: string;
  readonly tenantsDir: string | null;
  readonly ferryPaths: readonly string[];
}

export interface NodeRecord {
  readonly name: string;
  /** The node's API address, once it listens. */
  readonly url: string | null;
  readonly substrate: string;
  readonly capacity: Resources;
  /** The dimensions its substrate enforces, or null when it enforces none (limits not enforced). */
  readonly enforced: readonly string[] | null;
  /** Where a tenant registered for this node keeps its data by default, and what it must not overlap. */
  readonly tenantHome: TenantHome;
  readonly state: NodeState;
  readonly epoch: number;
  readonly startedAt: string;
  readonly lastSeenAt: string;
  readonly lostAt: string | null;
}

/** A node's claim on its lease: the store refuses a node's write whose epoch is not the current one. */
export interface NodeLease {
  readonly name: string;
  readonly epoch: number;
}
