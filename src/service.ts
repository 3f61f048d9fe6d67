/**
 * Ferry as a service: store + substrate + runner + HTTP API, with an explicit start()/stop().
 * stop() drains HTTP, stops scheduling and watching, and closes the store; it never stops a job.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from './api/app.ts';
import { loadAdminToken, loadTokens } from './api/auth.ts';
import type { FerryConfig } from './config.ts';
import type { LogFn } from './core/log.ts';
import { acquireRunnerLock } from './runner/runner-lock.ts';
import { Runner } from './runner/runner.ts';
import { openPostgresStore, openSqliteStore } from './store/open-store.ts';
import type { Store } from './store/store.ts';
import { ProcessSubstrate } from './substrates/process/process-substrate.ts';
import type { Substrate } from './substrates/substrate.ts';
import { ThreadService } from './tracker/thread-service.ts';

export type { LogFn } from './core/log.ts';

export const consoleLog: LogFn = (level, msg, fields) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (level === 'info') process.stdout.write(`${line}\n`);
  else process.stderr.write(`${line}\n`);
};

export interface FerryService {
  readonly url: string;
  readonly runner: Runner;
  readonly store: Store;
  readonly app: FastifyInstance;
  /** Issue threads: webhooks in, comments out through the outbox. */
  readonly threads: ThreadService;
  stop(): Promise<void>;
}

export async function createSubstrate(config: FerryConfig, log: LogFn = consoleLog): Promise<Substrate> {
  if (config.substrate === 'container') {
    const { ContainerSubstrate } = await import('./substrates/container/container-substrate.ts');
    return new ContainerSubstrate({
      socketPath: config.dockerSocket,
      dataDir: config.dataDir,
      ...(config.capacity ? { capacity: config.capacity } : {}),
      ...(config.defaultImage ? { defaultImage: config.defaultImage } : {}),
      logLimit: config.logLimit,
    });
  }
  if (config.substrate === 'swarm') {
    const { SwarmSubstrate } = await import('./substrates/swarm/swarm-substrate.ts');
    return new SwarmSubstrate({
      socketPath: config.dockerSocket,
      dataDir: config.dataDir,
      ...(config.capacity ? { capacity: config.capacity } : {}),
      ...(config.defaultImage ? { defaultImage: config.defaultImage } : {}),
      ...(config.swarmHelperImage ? { helperImage: config.swarmHelperImage } : {}),
      logLimit: config.logLimit,
    });
  }
  return new ProcessSubstrate({
    dataDir: config.dataDir,
    capacity: config.capacity ?? undefined,
    cgroups: config.cgroups,
    isolation: config.isolation,
    logLimit: config.logLimit,
    warn: (msg) => log('warn', msg),
  });
}

/**
 * Ferry's data folder holds the store, the admin token and every job's log: only Ferry's user may
 * read it. A folder made by an older Ferry, or by hand, may be looser: tightened on every start.
 */
export function tightenDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  for (const name of ['ferry.db', 'ferry.db-wal', 'ferry.db-shm', 'token', 'ferry.yaml', 'server-url']) {
    const path = join(dataDir, name);
    if (existsSync(path)) chmodSync(path, 0o600);
  }
}

/** What the other nodes can reach: listening on every address (0.0.0.0, ::), this host's name. */
function advertisedUrl(listening: string, host: string): string {
  const u = new URL(listening);
  if (host === '0.0.0.0' || host === '::') u.hostname = hostname();
  return u.origin;
}

export interface ServiceOptions {
  /** Another live process is this node (FERRY_NODE_TAKEN after a reconnect): the CLI exits; default: the runner stops. */
  readonly onNodeTaken?: (err: Error) => void;
}

export async function startService(config: FerryConfig, log: LogFn = consoleLog, options: ServiceOptions = {}): Promise<FerryService> {
  tightenDataDir(config.dataDir);
  const tokens = loadTokens(config.tokensFile);
  const lock = await acquireRunnerLock(config.dataDir);
  let store: Store;
  try {
    store = config.databaseUrl ? await openPostgresStore(config.databaseUrl) : await openSqliteStore(join(config.dataDir, 'ferry.db'));
  } catch (err) {
    await lock.release();
    throw err;
  }
  let node: string;
  try {
    // A SQLite store holds one node: started without --node, it stays the node it was (the host name may change).
    node = config.node ?? (store.dialect === 'sqlite' ? ((await store.listNodes())[0]?.name ?? null) : null) ?? hostname();
    await loadAdminToken(tokens, config.dataDir, store, node, new Date());
  } catch (err) {
    await store.close();
    await lock.release();
    throw err;
  }
  let substrate: Substrate | null = null;
  let threads: ThreadService | null = null;
  let runner: Runner | null = null;
  let app: FastifyInstance | null = null;
  try {
    substrate = await createSubstrate(config, log);
    await substrate.init();
    runner = new Runner({
      store,
      substrate,
      logsDir: join(config.dataDir, 'logs'),
      tenantsDir: config.substrate === 'process' ? join(config.dataDir, 'tenants') : undefined,
      ferryPaths: [config.dataDir, ...(config.tokensFile ? [config.tokensFile] : [])],
      uidRange: config.uidRange,
      capacity: config.capacity ?? undefined,
      issueDefaults: config.issueDefaults ?? undefined,
      log,
      node: { name: node, lostAfterMs: config.nodeLostAfterMs },
      ...(options.onNodeTaken ? { onNodeTaken: options.onNodeTaken } : {}),
    });
    // Before the runner starts, so that transitions of the restart (re-attach, lost → held) reach the threads.
    threads = new ThreadService({ store, runner, config: config.tracker, log });
    await threads.start();
    await runner.start();
    app = buildApi({
      runner,
      tokens,
      bodyLimit: config.bodyLimit,
      maxConnections: config.maxConnections,
      maxFollowers: config.maxFollowers,
      hooks: threads,
      log,
    });
    const address = await app.listen({ host: config.host, port: config.port });
    const url = address.replace('[::1]', 'localhost');
    writeFileSync(join(config.dataDir, 'server-url'), `${url}\n`, { mode: 0o600 });
    await runner.setUrl(config.advertiseUrl ?? advertisedUrl(url, config.host));
    // SQLite made its files with the process umask: only Ferry may read the store.
    tightenDataDir(config.dataDir);
    const limits = substrate.limits();
    const isolation = substrate.isolation();
    log('info', `ferry listening on ${url}`, {
      console: `${url}/`,
      dataDir: config.dataDir,
      node,
      store: store.dialect,
      substrate: substrate.kind,
      limitsEnforced: limits.enforced,
      limits: limits.detail,
      isolated: isolation.isolated,
      isolation: isolation.detail,
    });
    const sub = substrate;
    const thr = threads;
    const run = runner;
    const api = app;
    const db = store;
    return {
      url,
      runner: run,
      store: db,
      app: api,
      threads: thr,
      async stop() {
        await api.close();
        await run.stop();
        await thr.stop();
        await sub.close();
        await db.close();
        await lock.release();
      },
    };
  } catch (err) {
    // Undo a half start (e.g. the port is taken) so nothing keeps scheduling against a closed store.
    await app?.close().catch(() => undefined);
    await runner?.stop().catch(() => undefined);
    await threads?.stop().catch(() => undefined);
    await substrate?.close().catch(() => undefined);
    await store.close();
    await lock.release();
    throw err;
  }
}
