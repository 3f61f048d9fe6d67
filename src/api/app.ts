/**
 * The HTTP API (Fastify). JSON in and out; request documents may also be YAML. Every error is
 * `application/problem+json` with a stable `code` (src/api/problems.ts); nothing is written unless
 * the whole request is valid.
 *
 * This module builds the instance — server timeouts, the connection cap, the body parsers, error
 * handling, the refusal while stopping — and registers the routes, one file per resource:
 * health-routes, tenant-routes, migration-routes, log-routes, issue-routes, webhook-routes,
 * node-routes (the cluster's nodes; node-forward.ts takes logs and job control to their node), and
 * for the operator console session-routes (sign-in), event-routes (server-sent events),
 * capacity-routes and console-routes (its static files at `/`).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { createServer, type RequestListener } from 'node:http';
import { FerryError } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import type { Runner } from '../runner/runner.ts';
import type { DeliveryHandler } from '../tracker/thread-service.ts';
import type { TokenRegistry } from './auth.ts';
import { connectionCap, guardConnections, processDescriptorLimit } from './connection-guard.ts';
import { registerCapacityRoutes } from './capacity-routes.ts';
import { registerConsoleRoutes } from './console-routes.ts';
import { registerDocumentParsers } from './document-parsers.ts';
import { registerEventRoutes } from './event-routes.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { registerIssueRoutes } from './issue-routes.ts';
import type { FollowerLimits } from './log-followers.ts';
import { registerLogRoutes } from './log-routes.ts';
import { registerMigrationRoutes } from './migration-routes.ts';
import { registerNodeRoutes } from './node-routes.ts';
import { clientError, sendProblem } from './problems.ts';
import { MAX_PARAM_LENGTH } from './request-params.ts';
import { routeAccess } from './route-access.ts';
import { SessionStore } from './session.ts';
import { registerSessionRoutes } from './session-routes.ts';
import { registerTenantRoutes } from './tenant-routes.ts';
import { registerWebhookRoutes } from './webhook-routes.ts';

export interface ApiOptions {
  readonly runner: Runner;
  readonly tokens: TokenRegistry;
  readonly bodyLimit: number;
  /** Receives tracker webhooks (src/api/webhook-routes.ts); without one every delivery is refused. */
  readonly hooks?: DeliveryHandler | undefined;
  /** Where warnings and 5xx errors go. Default: nowhere. */
  readonly log?: LogFn;
  /**
   * Most HTTP connections at once. Default 1000; lowered at start when the process's descriptor
   * limit leaves fewer than `reserveDescriptors` free (said in the log).
   */
  readonly maxConnections?: number | undefined;
  /** Descriptors kept free of connections for the store, running jobs' logs and the substrate. Default 256. */
  readonly reserveDescriptors?: number | undefined;
  /** Most log followers (`?follow=true`) at once, in all and per token. Default 200 and 20. */
  readonly maxFollowers?: FollowerLimits | undefined;
  /** Time a client has to send the request line and headers, in ms. Default 10000. */
  readonly headersTimeoutMs?: number | undefined;
  /** Time a client has to send a whole request (headers and body), in ms. Default 60000. */
  readonly requestTimeoutMs?: number | undefined;
  /** Time an idle keep-alive connection stays open, in ms. Default 5000. */
  readonly keepAliveTimeoutMs?: number | undefined;
  /** Console sessions end after this long without a request, in ms. Default 12 hours. */
  readonly sessionIdleMs?: number | undefined;
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  const { runner } = opts;
  const headersTimeout = opts.headersTimeoutMs ?? 10_000;
  const requestTimeout = Math.max(opts.requestTimeoutMs ?? 60_000, headersTimeout);
  const app = Fastify({
    bodyLimit: opts.bodyLimit,
    logger: false,
    // Fastify's own 503 while closing is not problem+json: the onRequest hook below answers instead.
    return503OnClosing: false,
    // A stop must not wait for keep-alive sockets or log followers.
    forceCloseConnections: true,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Node checks headersTimeout/requestTimeout every connectionsCheckingInterval (30 s by default):
    // check every second, so that half-sent requests do not pile up for 30 s more.
    serverFactory: (handler: RequestListener) =>
      createServer(
        { headersTimeout, requestTimeout, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000, connectionsCheckingInterval: Math.min(1_000, headersTimeout) },
        handler,
      ),
    frameworkErrors: (error, request, reply) => {
      void sendProblem(reply, error, request, opts.log);
    },
    clientErrorHandler: (error, socket) => clientError(error, socket, { headersTimeout, requestTimeout }),
  });
  const soft = processDescriptorLimit();
  const reserve = opts.reserveDescriptors ?? 256;
  const configured = opts.maxConnections ?? 1000;
  const cap = connectionCap(configured, soft, reserve);
  if (cap < configured) {
    opts.log?.(
      'warn',
      `at most ${cap} HTTP connections at once, not ${configured}: the descriptor limit (ulimit -n) is ${soft}, and ${reserve} stay free for the store and running jobs; raise the limit to allow more`,
      {
        maxConnections: cap,
        descriptorLimit: soft,
      },
    );
  }
  guardConnections(app.server, cap);

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new FerryError('FERRY_BUSY', 'Ferry is stopping; send the request again once it is back');
  });

  registerDocumentParsers(app, opts.bodyLimit);
  app.setErrorHandler((error, request, reply) => sendProblem(reply, error, request, opts.log, () => runner.storageFull()));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      new FerryError('FERRY_NOT_FOUND', `no such endpoint: ${request.method} ${request.url.split('?')[0]}; see the API in README.md`),
      request,
    ),
  );

  // In memory only: a restart signs every console user out (src/api/session.ts).
  const sessions = new SessionStore(opts.sessionIdleMs !== undefined ? { idleMs: opts.sessionIdleMs } : {});
  const access = routeAccess(runner, opts.tokens, sessions);
  registerHealthRoutes(app, runner);
  registerConsoleRoutes(app);
  registerSessionRoutes(app, opts.tokens, sessions, access);
  registerEventRoutes(app, runner, access, opts.maxFollowers, opts.log);
  registerCapacityRoutes(app, runner, access);
  registerNodeRoutes(app, runner, access);
  registerTenantRoutes(app, runner, access);
  registerMigrationRoutes(app, runner, access);
  registerLogRoutes(app, runner, access, opts.maxFollowers);
  registerIssueRoutes(app, runner, access);
  registerWebhookRoutes(app, { bodyLimit: opts.bodyLimit, handler: opts.hooks ?? null });
  return app;
}
