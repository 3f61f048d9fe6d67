/**
 * A migration's state changes. Each is a compare-and-set by lifecycle event: the transition table
 * in core/lifecycle.ts decides where the event leads, the update only lands when the migration is
 * still in the state it was read in, and its event row is appended in the same transaction. Losing
 * the race is a typed FERRY_CONFLICT, never a silent overwrite. Reached through the Store.
 */
import { randomBytes } from 'node:crypto';
import type { Insertable, Kysely, QueryCreator, Transaction, Updateable } from 'kysely';
import { FerryError } from '../core/errors.ts';
import { transition, type LifecycleEvent } from '../core/lifecycle.ts';
import type { MigrationState } from '../core/types.ts';
import { EVENT_COLUMNS, eventRow, eventsOf, type EventInput } from './event-records.ts';
import type { SqlDialect } from './dialect.ts';
import { fenceIn } from './node-fence.ts';
import { movedNoticeOf } from './notices.ts';
import type { MigrationRecord, NodeLease } from './records.ts';
import { migrationRecord, patchColumns, type MigrationPatch } from './row-records.ts';
import type { Database, Db, EventsTable, MigrationsTable } from './schema.ts';
import { ONE_HOLDER_PER_TENANT } from './tenant-holders.ts';
import { isUniqueViolation } from './unique-violation.ts';

/** The event of a state change: its kind is a lifecycle event, and the transition table decides where it leads. */
export interface TransitionEvent extends EventInput {
  readonly kind: LifecycleEvent;
}

/** Called after a transition commits (issue threads, metrics). Must not throw; errors are swallowed. */
export type TransitionListener = (m: MigrationRecord, from: MigrationState, event: EventInput) => void;

/** More writes that must commit with a transition, or not at all; `m` is the migration after the move. */
export type InTransition = (trx: Transaction<Database>, m: MigrationRecord) => Promise<void>;

export interface TransitionArgs {
  id: string;
  /** The state (or states) the caller read the migration in; anything else is FERRY_CONFLICT. */
  from: MigrationState | readonly MigrationState[];
  patch?: MigrationPatch;
  event: TransitionEvent;
  now: Date;
  /** The node's lease, for a move a node makes on its own attempt: refused (FERRY_FENCED) when it is not current. */
  lease?: NodeLease | undefined;
}

export interface TransitionsArgs {
  id: string;
  from: MigrationState | readonly MigrationState[];
  moves: ReadonlyArray<{ patch?: MigrationPatch | undefined; event: TransitionEvent }>;
  now: Date;
  lease?: NodeLease | undefined;
}

/** The moves of a transaction, heard by the listeners once it commits. */
export type Heard = Array<{ m: MigrationRecord; from: MigrationState; event: EventInput }>;

export class MigrationTransitions {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;
  private readonly listeners = new Set<TransitionListener>();
  private readonly remoteListeners = new Set<(m: MigrationRecord) => void>();
  /** Names this store in its notices, so that its node tells its own moves from the other nodes'. */
  readonly origin = randomBytes(8).toString('hex');

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
  }

  /** Listen to transitions committed by other nodes (announced by announceRemote); returns the function that stops listening. */
  onRemoteTransition(listener: (m: MigrationRecord) => void): () => void {
    this.remoteListeners.add(listener);
    return () => this.remoteListeners.delete(listener);
  }

  /** Another node moved migration `id`: tell the remote listeners its record as it is now. */
  async announceRemote(id: string): Promise<void> {
    if (this.remoteListeners.size === 0) return;
    const row = await this.db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return;
    const m = migrationRecord(row);
    for (const listener of this.remoteListeners) {
      try {
        listener(m);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Listen to committed transitions; returns the function that stops listening. */
  onTransition(listener: TransitionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Compare-and-set: move migration `id` from `from` by its event, apply `patch`, append the event.
   * Throws FERRY_CONFLICT (or FERRY_NOT_FOUND) when the migration is not in `from` any more, and
   * FERRY_TENANT_BUSY when the move would give its tenant a second holder.
   */
  async transition(args: TransitionArgs, inTrx?: InTransition): Promise<MigrationRecord> {
    return this.transitions({ id: args.id, from: args.from, moves: [{ patch: args.patch, event: args.event }], now: args.now, lease: args.lease }, inTrx);
  }

  /**
   * Several moves of one migration at once (e.g. filed → approved → queued), each with its own
   * event. Listeners hear every move once the whole commits. On PostgreSQL a move that needs no
   * more writes and no fence is one statement (its own transaction): one round trip, one commit.
   */
  async transitions(args: TransitionsArgs, inTrx?: InTransition): Promise<MigrationRecord> {
    const heard: Heard = [];
    const oneStatement = this.dialect === 'postgres' && !inTrx && !args.lease;
    const row = oneStatement ? await this.applyIn(this.db, args, heard) : await this.db.transaction().execute((trx) => this.applyIn(trx, args, heard, inTrx));
    this.tell(heard);
    return row;
  }

  /** Tell the listeners about moves that committed. */
  tell(heard: Heard): void {
    for (const { m, from, event } of heard) {
      for (const listener of this.listeners) {
        try {
          listener(m, from, event);
        } catch {
          // a listener's failure never undoes or blocks a transition
        }
      }
    }
  }

  /**
   * The moves of `args` in the caller's transaction (or, for a move that needs no other write, as
   * one statement on `db`); what they did goes to `heard`, for tell() after the commit.
   */
  async applyIn(db: Db, args: TransitionsArgs, heard: Heard, inTrx?: InTransition): Promise<MigrationRecord> {
    const froms = typeof args.from === 'string' ? [args.from] : [...args.from];
    try {
      if (args.lease) await fenceIn(db, this.dialect, args.lease);
      // With one possible state the UPDATE's `where state = …` is the whole check; with several,
      // the current one decides where the events lead, and the UPDATE still guards against a change since.
      const from = froms.length === 1 ? froms[0]! : await this.currentState(db, args.id, froms);
      const { path, set, events } = planMoves(args, from);
      const row = path.length === 0 ? await this.currentRow(db, args.id) : await this.moveRow(db, args.id, from, set, events);
      if (!row) throw await this.lostRace(db, args.id, froms);
      const updated = migrationRecord(row);
      if (inTrx) await inTrx(db as Transaction<Database>, updated);
      for (const p of path) heard.push({ m: updated, from: p.from, event: p.event });
      return updated;
    } catch (err) {
      throw tenantBusy(err, args.id);
    }
  }

  /**
   * The compare-and-set: the row moved from `from`, with its events and (PostgreSQL) the notice that
   * tells every node and event stream now rather than at its next pass; undefined when it was not in `from`.
   */
  private async moveRow(db: Db, id: string, from: MigrationState, set: Updateable<MigrationsTable>, events: Array<Insertable<EventsTable>>) {
    const update = (q: QueryCreator<Database>) => q.updateTable('migrations').set(set).where('id', '=', id).where('state', '=', from);
    if (this.dialect !== 'postgres') {
      const row = await update(db).returningAll().executeTakeFirst();
      if (row) await db.insertInto('events').values(events).execute();
      return row;
    }
    return db
      .with('moved', (q) => update(q).returningAll())
      .with('logged', (q) => q.insertInto('events').columns(EVENT_COLUMNS).expression(eventsOf('moved', events)))
      .selectFrom('moved')
      .selectAll()
      .select(movedNoticeOf('moved', this.origin).as('told'))
      .executeTakeFirst();
  }

  async currentRow(db: Db, id: string) {
    return db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The state of migration `id` when it is one of `froms`: FERRY_NOT_FOUND or FERRY_CONFLICT otherwise. */
  private async currentState(db: Db, id: string, froms: readonly MigrationState[]): Promise<MigrationState> {
    const current = await db.selectFrom('migrations').select('state').where('id', '=', id).executeTakeFirst();
    if (current && froms.includes(current.state as MigrationState)) return current.state as MigrationState;
    throw await this.lostRace(db, id, froms, current?.state);
  }

  /** The error of a compare-and-set that found the migration gone or in another state than `froms`. */
  async lostRace(db: Db, id: string, froms: readonly MigrationState[], known?: string): Promise<FerryError> {
    const state = known ?? (await db.selectFrom('migrations').select('state').where('id', '=', id).executeTakeFirst())?.state;
    if (state === undefined) return new FerryError('FERRY_NOT_FOUND', `no migration ${id}`, { id });
    return new FerryError('FERRY_CONFLICT', `migration ${id} is ${state}, not ${froms.join(' or ')}; it changed meanwhile, reload it and decide again`, {
      id,
      state,
      expected: froms,
    });
  }
}

/** Where `moves` lead from `from` (the one transition table decides, and refuses an illegal event), the UPDATE's SET and the events. */
export function planMoves(args: Pick<TransitionsArgs, 'id' | 'moves' | 'now'>, from: MigrationState) {
  const path: Array<{ from: MigrationState; to: MigrationState; event: TransitionEvent }> = [];
  let to = from;
  for (const move of args.moves) {
    const next = transition(to, move.event.kind);
    path.push({ from: to, to: next, event: move.event });
    to = next;
  }
  const at = args.now.toISOString();
  const set = { updated_at: at, ...Object.assign({}, ...args.moves.map((m) => patchColumns(m.patch ?? {}))), state: to } as Updateable<MigrationsTable>;
  const events = path.map((p) => eventRow(args.id, p.from, p.to, p.event, at));
  return { path, set, events };
}

/** FERRY_TENANT_BUSY for the unique index's refusal of a second holder of a tenant; any other error as it is. */
export function tenantBusy(err: unknown, id: string): unknown {
  if (!isUniqueViolation(err, ONE_HOLDER_PER_TENANT)) return err;
  return new FerryError(
    'FERRY_TENANT_BUSY',
    `the tenant of migration ${id} is held by another migration; it waits until that one is final`,
    { id },
    { cause: err },
  );
}
