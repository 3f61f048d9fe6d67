/**
 * Group commit for the embedded SQLite store: transactions that run in the same turn of the event
 * loop share one SQLite transaction and so one fsync (`synchronous = FULL`), and each caller's
 * `transaction().execute()` resolves only once the commit that holds its writes is durable.
 *
 * How: a Kysely driver over the one better-sqlite3 connection. The first transaction of a group
 * opens `BEGIN IMMEDIATE`; each transaction is a savepoint inside it (a failed one rolls back to its
 * savepoint only, and its caller gets the error at once); a commit releases the savepoint and asks
 * for a flush in `setImmediate`, after the turn's other requests have run theirs. The flush commits
 * the group (one fsync) and resolves every transaction in it; if that commit fails (disk full), the
 * whole group is rolled back and every one of its callers gets the error: nothing was acknowledged.
 * better-sqlite3 is synchronous, so a transaction runs in microtasks and a flush can never land
 * between a transaction's commit and its caller's wait.
 *
 * A write outside a transaction (a bare UPDATE) first flushes the open group, then runs on its own
 * in autocommit (its own fsync). A read outside a transaction runs inside the open group and sees
 * its writes before they are durable: a reader may see a change that a failed commit then undoes.
 * Every effect Ferry makes after a write (start a job, answer a request) waits for that write's
 * own durability, so such a read can mislead a GET, never an effect.
 */
import type SQLite from 'better-sqlite3';
import type { CompiledQuery } from 'kysely';
import {
  Kysely,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type KyselyConfig,
  type QueryResult,
  type TransactionBuilder,
} from 'kysely';

interface Group {
  readonly durable: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const durable = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A group nobody waits on (all its transactions failed) must not be an unhandled rejection.
  durable.catch(() => undefined);
  return { durable, resolve, reject };
}

const SAVEPOINT = 'ferry_tx';

export class GroupCommitDriver implements Driver {
  readonly #sqlite: SQLite.Database;
  readonly #connection: DatabaseConnection;
  #locked: Promise<void> | null = null;
  #unlock: (() => void) | null = null;
  /** The open SQLite transaction holding the committed-but-not-durable transactions, if any. */
  #group: Group | null = null;
  /** The group the last committed transaction went into. */
  #lastCommit: Group | null = null;
  #inTransaction = false;
  #flushScheduled = false;
  /** A flush asked for while a transaction ran: done as that transaction ends. */
  #flushWaiting = false;
  /** Off while the schema migrates: one plain transaction each. */
  grouping = false;

  constructor(sqlite: SQLite.Database) {
    this.#sqlite = sqlite;
    this.#connection = {
      executeQuery: <R>(query: CompiledQuery): Promise<QueryResult<R>> => Promise.resolve(this.#execute<R>(query)),
      streamQuery: () => {
        throw new Error('the SQLite store does not stream queries');
      },
    };
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    while (this.#locked) await this.#locked;
    this.#locked = new Promise((resolve) => (this.#unlock = resolve));
    return this.#connection;
  }

  async releaseConnection(): Promise<void> {
    const unlock = this.#unlock;
    this.#locked = null;
    this.#unlock = null;
    unlock?.();
  }

  async beginTransaction(): Promise<void> {
    if (!this.grouping) {
      this.#sqlite.exec('BEGIN');
      return;
    }
    if (!this.#group) {
      this.#sqlite.exec('BEGIN IMMEDIATE');
      this.#group = newGroup();
    }
    this.#sqlite.exec(`SAVEPOINT ${SAVEPOINT}`);
    this.#inTransaction = true;
  }

  async commitTransaction(): Promise<void> {
    if (!this.grouping) {
      this.#sqlite.exec('COMMIT');
      return;
    }
    this.#sqlite.exec(`RELEASE ${SAVEPOINT}`);
    this.#inTransaction = false;
    this.#lastCommit = this.#group;
    this.#afterTransaction();
  }

  async rollbackTransaction(): Promise<void> {
    if (!this.grouping) {
      this.#sqlite.exec('ROLLBACK');
      return;
    }
    // The statement that failed may have ended the whole SQLite transaction (SQLITE_FULL does).
    if (this.#sqlite.inTransaction) {
      this.#sqlite.exec(`ROLLBACK TO ${SAVEPOINT}`);
      this.#sqlite.exec(`RELEASE ${SAVEPOINT}`);
    } else if (this.#group) {
      const group = this.#group;
      this.#group = null;
      group.reject(new Error('the SQLite transaction was rolled back by a failed statement'));
    }
    this.#inTransaction = false;
    this.#afterTransaction();
  }

  async destroy(): Promise<void> {
    this.flush();
    this.#sqlite.close();
  }

  /** Resolves once the last committed transaction is durable; rejects if its group's commit failed. */
  durable(): Promise<void> {
    return this.#lastCommit?.durable ?? Promise.resolve();
  }

  /** Commit the open group now (one fsync) and settle its transactions. */
  flush(): void {
    this.#flushScheduled = false;
    if (!this.#group) return;
    if (this.#inTransaction) {
      this.#flushWaiting = true;
      return;
    }
    const group = this.#group;
    this.#group = null;
    this.#flushWaiting = false;
    try {
      this.#sqlite.exec('COMMIT');
    } catch (err) {
      if (this.#sqlite.inTransaction) this.#sqlite.exec('ROLLBACK');
      group.reject(err);
      return;
    }
    group.resolve();
  }

  #afterTransaction(): void {
    if (this.#flushWaiting) this.flush();
    else if (this.#group && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  #execute<R>(query: CompiledQuery): QueryResult<R> {
    const statement = this.#sqlite.prepare(query.sql);
    if (statement.reader) return { rows: statement.all(query.parameters) as R[] };
    // A write outside a transaction runs on its own, after the open group is durable.
    if (!this.#inTransaction && this.#group) this.flush();
    const { changes, lastInsertRowid } = statement.run(query.parameters);
    return {
      numAffectedRows: BigInt(changes),
      insertId: lastInsertRowid === undefined || lastInsertRowid === null ? undefined : BigInt(lastInsertRowid),
      rows: [],
    };
  }
}

/** Kysely's SQLite dialect on the group-commit driver. */
export function groupCommitDialect(driver: GroupCommitDriver): Dialect {
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => driver,
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  };
}

/**
 * A Kysely whose `transaction().execute()` returns once the transaction's group is durable. Only
 * `transaction()` is changed; everything else is Kysely's.
 */
export class DurableKysely<DB> extends Kysely<DB> {
  readonly #driver: GroupCommitDriver;

  constructor(config: KyselyConfig, driver: GroupCommitDriver) {
    super(config);
    this.#driver = driver;
  }

  override transaction(): TransactionBuilder<DB> {
    const builder = super.transaction();
    const driver = this.#driver;
    return new Proxy(builder, {
      get(target, prop, receiver) {
        if (prop !== 'execute') return Reflect.get(target, prop, receiver) as unknown;
        return async <T>(callback: Parameters<TransactionBuilder<DB>['execute']>[0]): Promise<T> => {
          const result = (await target.execute(callback)) as T;
          await driver.durable();
          return result;
        };
      },
    });
  }
}
