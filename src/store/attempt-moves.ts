/**
 * An attempt's start (queued → running, with its row and its artifacts' intents) and its end (the
 * outcome, with the attempt ended): the two moves a node makes on its own attempts, fenced by its
 * lease. On PostgreSQL each is one statement (postgres-attempt-moves.ts); on SQLite a transition
 * with its more writes in the same transaction. When nothing was written, the reads after say why.
 * Reached through the Store.
 */
import { FerryError } from '../core/errors.ts';
import type { Verdict } from '../core/types.ts';
import { artifactKey, artifactsInOrder, recordArtifactsIn } from './artifact-records.ts';
import { attemptRow, insertAttemptIn, type NewAttempt } from './attempt-records.ts';
import type { SqlDialect } from './dialect.ts';
import type { EventInput } from './event-records.ts';
import { planMoves, tenantBusy, type MigrationTransitions, type TransitionEvent } from './migration-transitions.ts';
import { fenceIn } from './node-fence.ts';
import { finishAttemptStatement, startAttemptStatement } from './postgres-attempt-moves.ts';
import type { ArtifactRecord, AttemptRecord, MigrationRecord, NodeLease } from './records.ts';
import { attemptColumns, attemptRecord, migrationRecord, type AttemptPatch, type MigrationPatch } from './row-records.ts';
import type { Db } from './schema.ts';

export interface StartAttemptArgs {
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
  /** The starting node's lease: the attempt (and its artifacts) are that node's. */
  lease?: NodeLease | undefined;
  /** Artifacts the attempt will create (log, scratch, snapshot, first job): recorded here, before any is created. */
  artifacts?: ReadonlyArray<{ kind: string; ref: string }>;
}

export interface FinishAttemptArgs {
  id: string;
  number: number;
  attempt: AttemptPatch;
  patch?: MigrationPatch;
  event: TransitionEvent;
  now: Date;
  /** The attempt's node's lease: only that node, with its current lease, records the outcome. */
  lease?: NodeLease | undefined;
}

/** A started attempt: the migration as it is now, its artifacts' records, and the attempt's row as inserted. */
export interface StartedAttempt {
  readonly migration: MigrationRecord;
  readonly artifacts: ArtifactRecord[];
  readonly attempt: AttemptRecord;
}

export class AttemptMoves {
  private readonly db: Db;
  private readonly dialect: SqlDialect;
  private readonly moves: MigrationTransitions;

  constructor(db: Db, dialect: SqlDialect, moves: MigrationTransitions) {
    this.db = db;
    this.dialect = dialect;
    this.moves = moves;
  }

  /** queued → running as attempt `number`, with the attempt row and its artifacts' intents, at once. */
  async start(args: StartAttemptArgs): Promise<StartedAttempt> {
    const move = {
      patch: {
        attempts: args.number,
        limitsEnforced: args.limitsEnforced,
        isolated: args.isolated,
        verdict: args.verdict,
        heldCause: null,
        heldDetail: null,
        failedStep: null,
        progress: null,
      },
      event: { ...args.event, kind: 'start' as const },
    };
    const attempt: NewAttempt = {
      migrationId: args.id,
      number: args.number,
      fromStep: args.fromStep,
      logRef: args.logRef,
      firstJob: args.firstJob,
      startedAt: args.now.toISOString(),
      node: args.lease?.name ?? null,
    };
    const wanted = [...new Map((args.artifacts ?? []).map((a) => [artifactKey(a), { kind: a.kind, ref: a.ref }])).values()];
    if (this.dialect !== 'postgres') {
      let artifacts: ArtifactRecord[] = [];
      const migration = await this.moves.transition({ id: args.id, from: 'queued', ...move, now: args.now, lease: args.lease }, async (trx, m) => {
        if (args.lease) await this.requireTenantHere(trx, m, args.lease);
        await insertAttemptIn(trx, attempt);
        artifacts = await recordArtifactsIn(
          trx,
          (args.artifacts ?? []).map((a) => ({ migrationId: m.id, issue: m.issue, node: attempt.node, ...a })),
          args.now,
        );
      });
      return { migration, artifacts, attempt: attemptRecord(attemptRow(attempt)) };
    }
    const { path, set, events } = planMoves({ id: args.id, moves: [move], now: args.now }, 'queued');
    const w = { id: args.id, set, events, origin: this.moves.origin, lease: args.lease };
    const done = await startAttemptStatement(this.db, w, attempt, wanted, args.now.toISOString()).catch((err: unknown) => {
      throw tenantBusy(err, args.id);
    });
    if (!done) return this.whyNotStarted(args);
    const migration = migrationRecord(done.row);
    const artifacts = await artifactsInOrder(this.db, args.artifacts ?? [], done.recorded);
    this.moves.tell(path.map((p) => ({ m: migration, from: p.from, event: p.event })));
    return { migration, artifacts, attempt: attemptRecord(attemptRow(attempt)) };
  }

  /** End the running attempt: its event (`succeed`, `fail`, `cancel`) decides the migration's next state; at once. */
  async finish(args: FinishAttemptArgs): Promise<MigrationRecord> {
    const { lease } = args;
    const ended = attemptColumns({ ...args.attempt, endedAt: args.now.toISOString() });
    if (this.dialect !== 'postgres') {
      return this.moves.transition({ id: args.id, from: 'running', patch: args.patch ?? {}, event: args.event, now: args.now, lease }, async (trx, m) => {
        // The outcome of the attempt that is running, once: not of an earlier one a superseded supervision still watched.
        if (m.attempts !== args.number) throw otherAttemptRuns(args.id, m.attempts, args.number);
        let end = trx.updateTable('attempts').set(ended).where('migration_id', '=', args.id).where('number', '=', args.number).where('ended_at', 'is', null);
        if (lease) end = end.where('node', '=', lease.name);
        if (Number((await end.executeTakeFirst()).numUpdatedRows) !== 1) await this.whyNotEnded(trx, args);
      });
    }
    const { path, set, events } = planMoves({ id: args.id, moves: [{ patch: args.patch ?? {}, event: args.event }], now: args.now }, 'running');
    const row = await finishAttemptStatement(this.db, { id: args.id, set, events, origin: this.moves.origin, lease }, args.number, ended);
    if (!row) return this.whyNotFinished(args);
    const migration = migrationRecord(row);
    this.moves.tell(path.map((p) => ({ m: migration, from: p.from, event: p.event })));
    return migration;
  }

  /** Only the tenant's node starts it: the tenant may have moved to another node since the scheduler read its queue. */
  private async requireTenantHere(db: Db, m: { id: string; tenant: string }, lease: NodeLease): Promise<void> {
    let q = db.selectFrom('tenants').select('node').where('id', '=', m.tenant);
    if (this.dialect === 'postgres') q = q.forShare();
    const node = (await q.executeTakeFirst())?.node ?? null;
    if (node !== lease.name) {
      throw new FerryError('FERRY_CONFLICT', `tenant ${m.tenant} lives on node ${node ?? '(none)'} now, not ${lease.name}; its node starts it`, { id: m.id });
    }
  }

  /** A start that wrote nothing: the error the transaction's checks would have thrown, in their order. */
  private async whyNotStarted(args: StartAttemptArgs): Promise<never> {
    const m = await this.readMoved(args.id, 'queued', args.lease);
    if (args.lease) await this.requireTenantHere(this.db, m, args.lease);
    throw new FerryError('FERRY_CONFLICT', `migration ${args.id} changed while attempt ${args.number} was starting; reload it`, { id: args.id });
  }

  /** An end that wrote nothing: the error the transaction's checks would have thrown, in their order. */
  private async whyNotFinished(args: FinishAttemptArgs): Promise<never> {
    const m = await this.readMoved(args.id, 'running', args.lease);
    if (m.attempts !== args.number) throw otherAttemptRuns(args.id, m.attempts, args.number);
    return this.whyNotEnded(this.db, args);
  }

  /** Fenced, gone, or not in `from`: FERRY_FENCED, FERRY_NOT_FOUND, FERRY_CONFLICT; else the migration. */
  private async readMoved(id: string, from: 'queued' | 'running', lease: NodeLease | undefined) {
    if (lease) await fenceIn(this.db, this.dialect, lease);
    const row = await this.moves.currentRow(this.db, id);
    if (row?.state !== from) throw await this.moves.lostRace(this.db, id, [from], row?.state);
    return row;
  }

  /** The attempt was not ended: it is another node's (FERRY_FENCED) or it has ended already (FERRY_CONFLICT). */
  private async whyNotEnded(db: Db, args: FinishAttemptArgs): Promise<never> {
    const attempt = await db.selectFrom('attempts').select('node').where('migration_id', '=', args.id).where('number', '=', args.number).executeTakeFirst();
    if (args.lease && attempt?.node !== args.lease.name) {
      throw new FerryError(
        'FERRY_FENCED',
        `attempt ${args.number} of migration ${args.id} belongs to node ${attempt?.node ?? '(none)'}, not ${args.lease.name}`,
        { id: args.id },
      );
    }
    throw new FerryError('FERRY_CONFLICT', `attempt ${args.number} of migration ${args.id} has ended already`, { id: args.id });
  }
}

function otherAttemptRuns(id: string, running: number, number: number): FerryError {
  return new FerryError('FERRY_CONFLICT', `migration ${id} runs attempt ${running}, not ${number}; the outcome of attempt ${number} was recorded already`, {
    id,
  });
}
