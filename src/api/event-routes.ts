/**
 * GET /v1/events (filer): server-sent events for the console, scoped to the tenants the caller may
 * see. `migration` carries a migration's summary after every committed transition (one event for
 * moves committed together, e.g. approval and the gate); `progress` carries `{id, tenant, progress}` of a running migration whose
 * `::ferry::progress` changed, at most once per poll (every 2 s). A comment line every 15 s keeps
 * proxies from closing a quiet stream.
 *
 * Streams are bounded like log followers, with the same limits (maxFollowers) but their own
 * counts: per token (429 FERRY_TOO_MANY_FOLLOWERS) and in all (503 FERRY_BUSY).
 */
import type { FastifyInstance } from 'fastify';
import { PassThrough } from 'node:stream';
import { FerryError } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import type { Runner } from '../runner/runner.ts';
import type { MigrationRecord } from '../store/records.ts';
import { inScope, type Principal } from './auth.ts';
import { DEFAULT_FOLLOWER_LIMITS, type FollowerLimits } from './log-followers.ts';
import type { RouteAccess } from './route-access.ts';
import { migrationSummary } from './views.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Open event streams now (for tests). */
    eventStreamCount: () => number;
  }
}

/** How often running migrations' progress is looked at. */
const PROGRESS_POLL_MS = 2_000;
const KEEPALIVE_MS = 15_000;

interface Client {
  readonly principal: Principal;
  readonly stream: PassThrough;
}

export function registerEventRoutes(
  app: FastifyInstance,
  runner: Runner,
  access: RouteAccess,
  limits: FollowerLimits = DEFAULT_FOLLOWER_LIMITS,
  log?: LogFn,
): void {
  const { auth, principalOf } = access;
  const clients = new Set<Client>();
  const perName = new Map<string, number>();
  const lastProgress = new Map<string, string>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const send = (event: string, tenant: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) {
      // A client that does not read is not waited for: past its buffer it is dropped, and its page reconnects.
      if (!inScope(c.principal, tenant)) continue;
      if (c.stream.writableLength > 1024 * 1024) c.stream.destroy();
      else c.stream.write(frame);
    }
  };

  // Several moves committed together (filed → approved → queued) are heard once each, all with the
  // record after the last: one event says it all.
  let lastRecord: unknown = null;
  const onMove = (m: MigrationRecord) => {
    if (m === lastRecord) return;
    lastRecord = m;
    if (m.state !== 'running') lastProgress.delete(m.id);
    send('migration', m.tenant, migrationSummary(m));
  };
  const stopListening = runner.store.onTransition(onMove);
  // Moves made through the other nodes of a cluster reach this node's stream too, while a client
  // listens: each such move costs a read of the migration, which nobody needs when no one listens.
  let stopListeningRemote: (() => void) | null = null;

  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      const running = await runner.store.listMigrations({ state: ['running'] });
      const seen = new Set<string>();
      for (const m of running) {
        seen.add(m.id);
        const key = JSON.stringify(m.progress);
        if (m.progress === null || lastProgress.get(m.id) === key) continue;
        lastProgress.set(m.id, key);
        send('progress', m.tenant, { id: m.id, tenant: m.tenant, progress: m.progress, updatedAt: m.updatedAt });
      }
      for (const id of lastProgress.keys()) if (!seen.has(id)) lastProgress.delete(id);
    } catch (err) {
      log?.('warn', `event stream: could not read running migrations: ${(err as Error).message}`);
    } finally {
      polling = false;
    }
  };
  let ticks = 0;
  const ensureTimer = () => {
    if (timer || clients.size === 0) return;
    timer = setInterval(() => {
      ticks++;
      void poll().then(() => {
        if (ticks % Math.round(KEEPALIVE_MS / PROGRESS_POLL_MS) === 0) for (const c of clients) c.stream.write(': keep-alive\n\n');
      });
    }, PROGRESS_POLL_MS);
    timer.unref();
  };

  app.decorate('eventStreamCount', () => clients.size);
  app.addHook('onClose', async () => {
    closed = true;
    stopListening();
    stopListeningRemote?.();
    if (timer) clearInterval(timer);
    for (const c of [...clients]) c.stream.end();
  });

  app.get('/v1/events', { onRequest: auth('filer') }, async (request, reply) => {
    if (closed) throw new FerryError('FERRY_BUSY', 'the server is stopping; the page reconnects once it is back');
    const principal = principalOf(request);
    const mine = perName.get(principal.name) ?? 0;
    if (mine >= limits.perToken) {
      throw new FerryError(
        'FERRY_TOO_MANY_FOLLOWERS',
        `${principal.name} already has ${mine} event streams open, and a token may have at most ${limits.perToken} (maxFollowersPerToken); close a console tab`,
        {
          limit: limits.perToken,
        },
      );
    }
    if (clients.size >= limits.total) {
      throw new FerryError('FERRY_BUSY', `the server already serves ${clients.size} event streams, its bound (maxFollowers); try again later`, {
        limit: limits.total,
      });
    }
    const stream = new PassThrough();
    const client: Client = { principal, stream };
    clients.add(client);
    stopListeningRemote ??= runner.store.onRemoteTransition(onMove);
    perName.set(principal.name, mine + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clients.delete(client);
      const left = (perName.get(principal.name) ?? 1) - 1;
      if (left <= 0) perName.delete(principal.name);
      else perName.set(principal.name, left);
      if (clients.size === 0 && timer) {
        clearInterval(timer);
        timer = null;
      }
      if (clients.size === 0) {
        stopListeningRemote?.();
        stopListeningRemote = null;
      }
    };
    stream.once('close', release);
    reply.raw.once('close', () => stream.destroy());
    // Tells EventSource how long to wait before reconnecting, and that the stream is open.
    stream.write('retry: 2000\n: open\n\n');
    ensureTimer();
    reply.type('text/event-stream; charset=utf-8').header('cache-control', 'no-store').header('x-accel-buffering', 'no');
    return reply.send(stream);
  });
}
