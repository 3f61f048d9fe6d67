/**
 * A node's own session with PostgreSQL, beside the store's pool: it holds the node's advisory lock
 * (two live processes cannot be one node), LISTENs for notices from the other nodes (notices.ts),
 * and, for one node of the cluster at a time, the outbox sender's lock. If the connection drops,
 * both locks go with it; the session reconnects and takes the node's lock again, ending a session
 * of its own process that the server has not noticed is dead yet, but never another process's.
 * SQLite has one node: its session holds nothing and hears nothing (the data folder's lock file
 * keeps a second Ferry off the store).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { FerryError, coerceError } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import { NOTICE_CHANNEL, parseNotice, type Notice } from './notices.ts';

export interface NodeSession {
  /** Hear notices from every node (this one's included); `reconnected` after the session came back. */
  onNotice(listener: (notice: Notice | { readonly t: 'reconnected' }) => void): void;
  /** Whether this node is the cluster's outbox sender now (taking the role when nobody has it). */
  outboxSender(): Promise<boolean>;
  /** Whether the session holds the node's lock now (false while it reconnects): a node registers only then. */
  holdsNodeLock(): boolean;
  close(): Promise<void>;
}

/** How to reach PostgreSQL: the store's connection string and schema. */
export interface PostgresTarget {
  readonly connectionString: string;
  readonly schema?: string | undefined;
}

/** The server drops a session whose peer is gone within about 11 s, freeing its locks. */
export const KEEPALIVE_OPTIONS = '-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3';

export function sqliteSession(): NodeSession {
  return {
    onNotice: () => undefined,
    outboxSender: () => Promise.resolve(true),
    holdsNodeLock: () => true,
    close: () => Promise.resolve(),
  };
}

export async function openPostgresSession(target: PostgresTarget, node: string, onTaken: (err: FerryError) => void, log: LogFn): Promise<NodeSession> {
  const appName = `ferry:${node}:${randomBytes(6).toString('hex')}`.slice(0, 63);
  const listeners: Array<(n: Notice | { t: 'reconnected' }) => void> = [];
  let client: pg.Client | null = null;
  let sender = false;
  let closed = false;
  let reconnecting: NodeJS.Timeout | null = null;

  const nodeKey = `ferry-node:${node}`;
  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      connectionString: target.connectionString,
      application_name: appName,
      connectionTimeoutMillis: 5000,
      query_timeout: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      options: `${target.schema ? `-c search_path=${target.schema} ` : ''}${KEEPALIVE_OPTIONS}`,
    });
    c.on('error', () => undefined);
    await c.connect();
    try {
      let got = await tryLock(c, nodeKey);
      if (!got) {
        // A session of this very process that the server still thinks alive (the link was cut): end it.
        const stale = await c.query<{ pid: number }>(`SELECT a.pid FROM pg_stat_activity a WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()`, [
          appName,
        ]);
        for (const { pid } of stale.rows) await c.query('SELECT pg_terminate_backend($1)', [pid]);
        for (let i = 0; i < 20 && !got && stale.rows.length > 0; i++) {
          await sleep(250);
          got = await tryLock(c, nodeKey);
        }
      }
      if (!got) {
        throw new FerryError(
          'FERRY_NODE_TAKEN',
          `node ${node} is already running: another live Ferry process holds it in this database; stop that one first, or start this one with another --node`,
          { node },
        );
      }
      await c.query(`LISTEN ${NOTICE_CHANNEL}`);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    c.on('notification', (msg) => {
      if (msg.channel !== NOTICE_CHANNEL) return;
      const notice = parseNotice(msg.payload);
      if (notice) for (const l of listeners) l(notice);
    });
    c.once('end', () => {
      if (client !== c) return;
      client = null;
      sender = false;
      if (!closed) {
        log('warn', `node ${node}: lost its session with PostgreSQL; reconnecting`);
        scheduleReconnect();
      }
    });
    return c;
  };

  const scheduleReconnect = () => {
    if (reconnecting || closed) return;
    reconnecting = setTimeout(() => {
      reconnecting = null;
      connect()
        .then((c) => {
          if (closed) return void c.end().catch(() => undefined);
          client = c;
          log('info', `node ${node}: session with PostgreSQL back`);
          for (const l of listeners) l({ t: 'reconnected' });
        })
        .catch((err: unknown) => {
          if (err instanceof FerryError && err.code === 'FERRY_NODE_TAKEN') return onTaken(err);
          log('warn', `node ${node}: cannot reach PostgreSQL yet: ${coerceError(err).message}`);
          scheduleReconnect();
        });
    }, 1000);
    reconnecting.unref();
  };

  client = await connect();
  return {
    onNotice(listener) {
      listeners.push(listener);
    },
    holdsNodeLock: () => client !== null,
    async outboxSender() {
      if (sender) return true;
      const c = client;
      if (!c) return false;
      try {
        sender = await tryLock(c, 'ferry-outbox');
      } catch {
        sender = false;
      }
      return sender;
    },
    async close() {
      closed = true;
      if (reconnecting) clearTimeout(reconnecting);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined); // ending the session releases its locks
    },
  };
}

/** A session advisory lock named by `name` within the current schema (tests run clusters side by side in one database). */
async function tryLock(c: pg.Client, name: string): Promise<boolean> {
  const r = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtext($1 || ':' || current_schema())) AS ok`, [name]);
  return r.rows[0]?.ok === true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
