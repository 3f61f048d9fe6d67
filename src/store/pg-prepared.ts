/**
 * Named prepared statements for the PostgreSQL store. Kysely's PostgresDialect sends every query
 * unnamed, so PostgreSQL parses and plans each one anew (56 parses per migration, issue 14). This
 * wraps the pg Pool that Kysely borrows clients from: a client it lends out names each statement
 * after its SQL text, and node-postgres sends Parse only the first time a name is used on a
 * connection (`connection.parsedStatements`), as graphile-worker's statements are. The SQLite
 * store's `withStatementCache` (open-store.ts) does the same for better-sqlite3.
 *
 * The name cache lives on the pg Client, so a connection PostgreSQL closed is replaced by a new
 * Client that prepares its statements again; nothing here has to notice.
 */
import { createHash } from 'node:crypto';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/** A pg Pool as Kysely's PostgresDialect takes it, lending clients that name their statements. */
export interface PreparedPool extends PostgresPool {
  /** Whether statements get names now. Default false: schema migrations run unnamed (see below). */
  naming: boolean;
  /** How many SQL texts have a name so far (never more than `limit`). */
  readonly named: number;
}

export interface PreparedOptions {
  /** At most this many distinct SQL texts get a name, the first ones seen. Default 256. */
  readonly limit?: number;
}

// Only single DML statements: DDL, BEGIN/COMMIT and SET gain nothing, and Parse refuses a text
// holding several statements (a `;` may sit in a literal; such a text just stays unnamed).
const NAMEABLE = /^\s*(select|insert|update|delete|with)\b/i;

/**
 * The pool's clients, lent to Kysely, name their statements once `naming` is set.
 *
 * Bounded by `limit` per pool, and first come first named rather than least recently used: a name
 * dropped from the cache would stay prepared on every connection that used it (closing it means a
 * round trip per connection), so a fixed set is what bounds each backend's memory at `limit`
 * statements. Ferry's statement shapes are a few dozen; texts that vary without end (`in (...)`
 * lists, multi-row INSERTs of varying length) take a name each until the limit, then go unnamed.
 */
export function withPreparedStatements(pool: pg.Pool, options: PreparedOptions = {}): PreparedPool {
  const limit = options.limit ?? 256;
  const names = new Map<string, string>();
  const taken = new Set<string>();
  const lent = new WeakMap<pg.PoolClient, PreparedClient>();
  const shared = {
    naming: false,
    epoch: 0,
    nameOf(text: string): string | undefined {
      const known = names.get(text);
      if (known !== undefined || names.size >= limit || !NAMEABLE.test(text) || text.includes(';')) return known;
      // Stable across nodes and restarts, so one shape has one name in every backend and log.
      const name = `ferry_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
      if (taken.has(name)) return undefined; // two texts, one hash: the second stays unnamed
      taken.add(name);
      names.set(text, name);
      return name;
    },
  };
  return {
    get naming() {
      return shared.naming;
    },
    set naming(on: boolean) {
      shared.naming = on;
    },
    get named() {
      return names.size;
    },
    async connect() {
      const client = await pool.connect();
      let wrapped = lent.get(client);
      if (!wrapped) {
        wrapped = new PreparedClient(client, shared);
        lent.set(client, wrapped);
      }
      return wrapped;
    },
    end: () => pool.end(),
  };
}

interface Shared {
  naming: boolean;
  /** Bumped when a prepared statement went stale: connections from an earlier epoch are retired. */
  epoch: number;
  nameOf(text: string): string | undefined;
}

class PreparedClient implements PostgresPoolClient {
  private readonly epoch: number;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly shared: Shared,
  ) {
    this.epoch = shared.epoch;
  }

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(sqlOrCursor: string | PostgresCursor<R>, parameters: ReadonlyArray<unknown> = []): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // Kysely streams through a cursor only when the dialect has one; Ferry's has none. Pass it through.
    if (typeof sqlOrCursor !== 'string') return this.client.query(sqlOrCursor as unknown as pg.Submittable) as unknown as PostgresCursor<R>;
    const values = parameters as unknown[];
    const name = this.shared.naming && this.epoch === this.shared.epoch ? this.shared.nameOf(sqlOrCursor) : undefined;
    if (name === undefined) return this.client.query(sqlOrCursor, values) as unknown as Promise<PostgresQueryResult<R>>;
    return this.named<R>(name, sqlOrCursor, values);
  }

  release(destroy?: boolean): void {
    // A connection whose statements may be stale is closed rather than pooled; its successor prepares afresh.
    this.client.release(Boolean(destroy) || this.epoch !== this.shared.epoch);
  }

  /**
   * "cached plan must not change result type" (0A000): a table changed under a prepared `select *`
   * or `returning *`, which happens when another node of the cluster, newer than this one, migrates
   * the schema while this one runs. PostgreSQL then refuses that statement on that connection for
   * ever. So: retire every connection prepared before now (they run unnamed until released, then
   * close) and, outside a transaction, run the statement again unnamed: it failed at Bind, before
   * doing anything. Inside one, the transaction is aborted and the error goes to its caller, at most
   * once per connection that was in one at that moment.
   */
  private async named<R>(name: string, text: string, values: unknown[]): Promise<PostgresQueryResult<R>> {
    // pg's record of the last ReadyForQuery ('I' = no transaction open). Not public: without it we
    // just never retry.
    const idle = (this.client as unknown as { _txStatus?: string | null })._txStatus === 'I';
    try {
      return (await this.client.query({ name, text, values })) as unknown as PostgresQueryResult<R>;
    } catch (err) {
      if (!isStalePlan(err)) throw err;
      if (this.epoch === this.shared.epoch) this.shared.epoch++;
      if (!idle) throw err;
      return (await this.client.query(text, values)) as unknown as PostgresQueryResult<R>;
    }
  }
}

function isStalePlan(err: unknown): boolean {
  const e = err as { code?: unknown; routine?: unknown; message?: unknown } | null;
  // The routine is the same whatever language the server's messages are in; the message covers a
  // server that moves the check elsewhere.
  return e?.code === '0A000' && (e.routine === 'RevalidateCachedQuery' || e.message === 'cached plan must not change result type');
}
