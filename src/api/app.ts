/**
 * The HTTP API (Fastify). JSON in and out; request documents may also be YAML. Every error is
 * `application/problem+json` with a stable `code`; nothing is written unless the whole request is
 * valid.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES, createServer, type RequestListener } from 'node:http';
import type { Duplex } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { assertDocumentBounds, assertValueBounds } from '../core/document-bounds.ts';
import { FerryError, coerceError, type ErrorCode } from '../core/errors.ts';
import { normaliseIssueRef } from '../core/issue-ref.ts';
import { TENANT_ID, parseMigrationRequest, validate } from '../core/request-schema.ts';
import { MIGRATION_STATES, RECOVERY_ACTIONS, type MigrationState } from '../core/types.ts';
import { RejectedError, type Runner } from '../runner/runner.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { DeliveryHandler } from '../tracker/thread-service.ts';
import { inScope, requireRole, type Principal, type Role, type TokenRegistry } from './auth.ts';
import { connectionCap, guardConnections, processDescriptorLimit } from './connection-guard.ts';
import { registerHooks } from './hooks.ts';
import { DEFAULT_FOLLOWER_LIMITS, LogFollowers, type FollowerLimits } from './log-followers.ts';
import { migrationDetail, migrationSummary, secretValues } from './views.ts';

export interface ApiOptions {
  readonly runner: Runner;
  readonly tokens: TokenRegistry;
  readonly bodyLimit: number;
  /** Receives tracker webhooks (src/api/hooks.ts); without one every delivery is refused. */
  readonly hooks?: DeliveryHandler | undefined;
  readonly log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
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
}

/** Longest path parameter, as sent (URL-encoded): an issue ref of 300 characters, encoded, fits. */
const MAX_PARAM_LENGTH = 1024;

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];
const MIGRATION_ID = /^m-[a-z0-9]{1,12}-[a-f0-9]{8}$/;

const actionBody = z.strictObject({ action: z.enum(RECOVERY_ACTIONS), reason: z.string().max(4000) });
const cancelBody = z.strictObject({ reason: z.string().max(4000).optional() }).optional();
const approveBody = z.strictObject({}).optional();
const listQuery = z.strictObject({
  tenant: z.string().regex(TENANT_ID, 'is not a tenant id').optional(),
  state: z.string().optional(),
  issue: z.string().max(300).optional(),
});
const logsQuery = z.strictObject({
  attempt: z.string().regex(/^[1-9]\d{0,5}$/, 'must be an attempt number').optional(),
  follow: z.enum(['true', 'false']).optional(),
});

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyInstance {
    /** The log followers of this API (src/api/log-followers.ts). */
    logFollowers: LogFollowers;
  }
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  const { runner, tokens } = opts;
  const store = runner.store;
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
      createServer({ headersTimeout, requestTimeout, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000, connectionsCheckingInterval: Math.min(1_000, headersTimeout) }, handler),
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
    opts.log?.('warn', `at most ${cap} HTTP connections at once, not ${configured}: the descriptor limit (ulimit -n) is ${soft}, and ${reserve} stay free for the store and running jobs; raise the limit to allow more`, {
      maxConnections: cap,
      descriptorLimit: soft,
    });
  }
  guardConnections(app.server, cap);

  const followers = new LogFollowers({
    limits: opts.maxFollowers ?? DEFAULT_FOLLOWER_LIMITS,
    attemptEnded: async (id, n) => (await store.getAttempt(id, n))?.endedAt != null,
  });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new FerryError('FERRY_BUSY', 'Ferry is stopping; send the request again once it is back');
  });
  app.addHook('onClose', async () => {
    followers.close();
  });
  // For tests and /metrics-like introspection: how many followers and shared tails there are.
  app.decorate('logFollowers', followers);

  // Documents are bounded in depth before they are parsed (src/core/document-bounds.ts): a deep
  // one would overflow the parser's stack. The JSON parser is Fastify's own (prototype-poisoning
  // protection included), behind that check.
  const fastifyJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: opts.bodyLimit }, (request, body, done) => {
    try {
      assertDocumentBounds(body as string, 'json');
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    void fastifyJson(request, body as string, done);
  });
  // Only JSON and YAML documents: anything else (text/plain included) is a 415.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit: opts.bodyLimit }, (_req, body, done) => {
    let value: unknown;
    try {
      assertDocumentBounds(body as string, 'yaml');
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    try {
      value = parseYaml(body as string, { uniqueKeys: true, maxAliasCount: 50, prettyErrors: true }) ?? undefined;
    } catch (err) {
      done(new FerryError('FERRY_BAD_REQUEST', `the body is not valid YAML: ${firstLine((err as Error).message)}`), undefined);
      return;
    }
    try {
      // Aliases repeat nodes, so the value can nest deeper than the text.
      assertValueBounds(value);
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    done(null, value);
  });

  app.setErrorHandler((error, request, reply) => sendProblem(reply, error, request, opts.log, () => runner.storageFull()));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new FerryError('FERRY_NOT_FOUND', `no such endpoint: ${request.method} ${request.url.split('?')[0]}; see the API in README.md`), request),
  );

  const auth = (role: Role) => async (request: FastifyRequest) => {
    const principal = tokens.authenticate(request.headers.authorization);
    requireRole(principal, role);
    request.principal = principal;
  };
  const actor = (request: FastifyRequest) => ({ name: request.principal?.name ?? 'unknown' });
  const principalOf = (request: FastifyRequest): Principal => {
    if (!request.principal) throw new FerryError('FERRY_UNAUTHENTICATED', 'this endpoint needs a token: send Authorization: Bearer <token>');
    return request.principal;
  };

  // A token limited to tenants sees nothing of the others: what it may not see answers exactly as
  // what does not exist (404), so that it cannot learn which tenants or migrations there are.
  const noTenant = (id: string) => new FerryError('FERRY_NOT_FOUND', `no tenant ${id}; register it with PUT /v1/tenants/${id}`);
  const noMigration = (id: string) => new FerryError('FERRY_NOT_FOUND', `no migration ${id}; list them with ferry ls`, { id });
  const visibleMigration = async (request: FastifyRequest, id: string): Promise<MigrationRecord> => {
    const m = await store.getMigration(id);
    if (!m || !inScope(principalOf(request), m.tenant)) throw noMigration(id);
    return m;
  };
  /** The document is read (and refused when invalid) before its tenant is checked against the token's. */
  const checkDocumentScope = (request: FastifyRequest): void => {
    const principal = principalOf(request);
    if (principal.tenants === null) return;
    const { tenant } = parseMigrationRequest(request.body, runner.issueDefaults);
    if (!inScope(principal, tenant)) {
      throw new FerryError('FERRY_NOT_FOUND', `no tenant ${tenant} that ${principal.name} may file for; this token is limited to ${[...principal.tenants].join(', ')}`);
    }
  };

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(runner.metrics.registry.contentType);
    return runner.metrics.registry.metrics();
  });

  // ── tenants ──
  app.put<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('admin') }, async (request, reply) => {
    const id = tenantParam(request.params.id);
    if (!inScope(principalOf(request), id)) throw noTenant(id);
    const { tenant, created, handedOver } = await runner.putTenant(id, request.body);
    reply.code(created ? 201 : 200);
    return { ...tenant, handedOver };
  });
  app.get('/v1/tenants', { onRequest: auth('filer') }, async (request) => {
    const principal = principalOf(request);
    return (await store.listTenants()).filter((t) => inScope(principal, t.id));
  });
  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('filer') }, async (request) => {
    const id = tenantParam(request.params.id);
    const tenant = await store.getTenant(id);
    if (!tenant || !inScope(principalOf(request), id)) throw noTenant(id);
    return tenant;
  });

  // ── migrations ──
  app.post('/v1/migrations/check', { onRequest: auth('filer') }, async (request, reply) => {
    checkDocumentScope(request);
    const verdict = await runner.check(request.body);
    if (!verdict.ok) throw new RejectedError(verdict, null);
    reply.code(200);
    return { ok: true, verdict };
  });

  app.post('/v1/migrations', { onRequest: auth('filer') }, async (request, reply) => {
    checkDocumentScope(request);
    const m = await runner.file(request.body, actor(request));
    reply.code(201).header('location', `/v1/migrations/${m.id}`);
    return migrationDetail(store, m);
  });

  app.get('/v1/migrations', { onRequest: auth('filer') }, async (request) => {
    const q = queryParams(listQuery, request.query);
    let states: MigrationState[] | undefined;
    if (q.state !== undefined) {
      states = q.state.split(',').map((s) => {
        if (!(MIGRATION_STATES as readonly string[]).includes(s)) {
          throw new FerryError('FERRY_BAD_REQUEST', `state ${JSON.stringify(s)} is not a state; use one of ${MIGRATION_STATES.join(', ')}`);
        }
        return s as MigrationState;
      });
    }
    const list = await store.listMigrations({
      ...(q.tenant !== undefined ? { tenant: q.tenant } : {}),
      ...(q.issue !== undefined ? { issue: issueParam(q.issue, runner) } : {}),
      ...(states ? { state: states } : {}),
    });
    const principal = principalOf(request);
    return list.filter((m) => inScope(principal, m.tenant)).map(migrationSummary);
  });

  app.get<{ Params: { id: string } }>('/v1/migrations/:id', { onRequest: auth('filer') }, async (request) => {
    const m = await visibleMigration(request, migrationParam(request.params.id));
    return migrationDetail(store, m);
  });

  app.get<{ Params: { id: string } }>('/v1/migrations/:id/logs', { onRequest: auth('filer') }, async (request, reply) => {
    const id = migrationParam(request.params.id);
    const q = queryParams(logsQuery, request.query);
    const m = await visibleMigration(request, id);
    const number = q.attempt !== undefined ? Number(q.attempt) : m.attempts;
    if (number === 0) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has not started an attempt yet, so it has no log`);
    const attempt = await store.getAttempt(id, number);
    if (!attempt) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has no attempt ${number}`);
    // Secret env values are masked in the text served (the file keeps what the job wrote).
    const source = { migrationId: id, attempt: number, path: attempt.logRef, secrets: secretValues(m.request) };
    if (q.follow !== 'true') {
      reply.type('text/plain; charset=utf-8');
      return reply.send(followers.readOnce(source));
    }
    // A follower stops when the attempt ends, the client goes away, or the server closes.
    const stream = followers.follow(source, principalOf(request).name);
    // The response closes when it is finished or the client goes away: the follower's place is freed.
    reply.raw.once('close', () => stream.destroy());
    stream.once('dropped', () => {
      // It was sent a closing line; a client that does not read even that loses the connection.
      setTimeout(() => request.raw.socket?.destroy(), 10_000).unref();
    });
    reply.type('text/plain; charset=utf-8');
    return reply.send(stream);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/approve', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    validate(approveBody, request.body, 'approval');
    await visibleMigration(request, id);
    const m = await runner.approve(id, actor(request));
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/cancel', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    const body = validate(cancelBody, request.body, 'cancel request');
    await visibleMigration(request, id);
    const m = await runner.cancel(id, actor(request), body?.reason ?? 'cancelled by an operator');
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/actions', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    const body = validate(actionBody, request.body, 'action');
    await visibleMigration(request, id);
    const m = await runner.act(id, body.action, body.reason, actor(request));
    return migrationDetail(store, m);
  });

  app.post<{ Params: { ref: string } }>('/v1/issues/:ref/close', { onRequest: auth('operator') }, async (request) => {
    validate(approveBody, request.body, 'close request');
    const ref = issueParam(request.params.ref, runner);
    const principal = principalOf(request);
    if (principal.tenants !== null) {
      // A limited token closes only issues whose every migration is of its tenants (and at least one).
      const migrations = await store.listMigrations({ issue: ref });
      if (migrations.length === 0 || migrations.some((m) => !inScope(principal, m.tenant))) {
        throw new FerryError('FERRY_NOT_FOUND', `no issue ${ref} with migrations that ${principal.name} may close; this token is limited to ${[...principal.tenants].join(', ')}`);
      }
    }
    return runner.closeIssue(ref, actor(request));
  });

  registerHooks(app, { bodyLimit: opts.bodyLimit, handler: opts.hooks ?? null });
  return app;
}

/** Query strings are part of the URL: a bad one is a 400, not a 422 like a bad document. */
function queryParams<T>(schema: z.ZodType<T>, query: unknown): T {
  try {
    return validate(schema, query ?? {}, 'query');
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError('FERRY_BAD_REQUEST', err.message, err.details);
    throw err;
  }
}

function tenantParam(id: string): string {
  if (!TENANT_ID.test(id)) {
    throw new FerryError('FERRY_BAD_REQUEST', `${JSON.stringify(id.slice(0, 80))} is not a tenant id: use lower-case letters, digits and dashes, starting with a letter or digit, at most 63 characters`);
  }
  return id;
}

function migrationParam(id: string): string {
  if (!MIGRATION_ID.test(id)) throw new FerryError('FERRY_NOT_FOUND', `no migration ${JSON.stringify(id.slice(0, 80))}; ids look like m-lx3k9a-7f2c01ab`);
  return id;
}

function issueParam(raw: string, runner: Runner): string {
  try {
    return normaliseIssueRef(raw, runner.issueDefaults);
  } catch (err) {
    if (err instanceof FerryError) throw new FerryError('FERRY_BAD_REQUEST', err.message);
    throw err;
  }
}

const TITLES: Partial<Record<ErrorCode, string>> = {
  FERRY_REJECTED: 'Rejected by the admission rule',
  FERRY_INVALID_REQUEST: 'Invalid request',
  FERRY_WRONG_STATE: 'Wrong state',
};

function sendProblem(
  reply: FastifyReply,
  error: unknown,
  request: FastifyRequest,
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void,
  storageFull: () => boolean = () => false,
): FastifyReply {
  let problem = toFerryError(error);
  // SQLite's "disk full" often reaches us masked (a failed commit, then a failed rollback): ask the disk.
  if (problem.code === 'FERRY_INTERNAL' && storageFull()) problem = storageFullError(error);
  if (problem.status >= 500) log?.('error', `${request.method} ${request.url}: ${coerceError(error).stack ?? String(error)}`);
  const body: Record<string, unknown> = {
    type: `urn:ferry:problem:${problem.code}`,
    title: TITLES[problem.code] ?? problem.code,
    status: problem.status,
    code: problem.code,
    detail: problem.message,
  };
  const details = problem.details as Record<string, unknown>;
  if (problem instanceof RejectedError) {
    body.reasons = problem.verdict.reasons;
    body.verdict = problem.verdict;
    if (problem.migrationId) body.migrationId = problem.migrationId;
  } else {
    for (const [k, v] of Object.entries(details)) if (!(k in body)) body[k] = v;
  }
  return reply.code(problem.status).type('application/problem+json').send(body);
}

function toFerryError(error: unknown): FerryError {
  if (error instanceof FerryError) return error;
  const e = coerceError(error) as Error & { statusCode?: number; code?: string };
  const status = e.statusCode;
  if (e.code === 'SQLITE_FULL' || e.code === 'ENOSPC') return storageFullError(error);
  if (status === 413) return new FerryError('FERRY_PAYLOAD_TOO_LARGE', 'the body is larger than this server accepts (bodyLimit); send a smaller document');
  if (status === 414 || e.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return new FerryError('FERRY_URI_TOO_LONG', `a part of the URL is longer than ${MAX_PARAM_LENGTH} characters; issue refs are at most 300 characters, URL-encoded`);
  }
  if (e.code === 'FST_ERR_BAD_URL') return new FerryError('FERRY_BAD_REQUEST', 'the URL is not valid (a bad %-escape?); URL-encode issue refs with encodeURIComponent');
  if (status === 415) return new FerryError('FERRY_UNSUPPORTED_MEDIA_TYPE', `content type not supported; send application/json or application/yaml`);
  if (status !== undefined && status >= 400 && status < 500) {
    const what = e.code?.startsWith('FST_ERR_CTP') ? 'the body could not be parsed' : 'bad request';
    return new FerryError('FERRY_BAD_REQUEST', `${what}: ${firstLine(e.message)}`);
  }
  return new FerryError('FERRY_INTERNAL', 'internal error; the server log has the details', {}, { cause: error });
}

function storageFullError(cause: unknown): FerryError {
  return new FerryError('FERRY_STORAGE_FULL', "the disk holding Ferry's data folder is full, so nothing was recorded; free space and send the request again", {}, { cause });
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.slice(0, 300) ?? '';
}

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (a malformed request line, a body
 * where none may be, headers too large, too slow): answered as problem+json with a code, then the
 * connection is closed, as Node does by default.
 */
function clientError(error: Error & { code?: string }, socket: Duplex, timeouts: { readonly headersTimeout: number; readonly requestTimeout: number }): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const problem =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new FerryError(
          'FERRY_REQUEST_TIMEOUT',
          `the request did not arrive in time (headers within ${timeouts.headersTimeout / 1000} s, the whole request within ${timeouts.requestTimeout / 1000} s); send it again, all at once`,
        )
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? new FerryError('FERRY_HEADERS_TOO_LARGE', 'the request headers are larger than this server accepts (16 KiB); send fewer or shorter headers')
        : error.code === 'HPE_URI_TOO_LONG' || error.code === 'HPE_HEADER_URL_TOO_LONG'
          ? new FerryError('FERRY_URI_TOO_LONG', 'the URL is longer than this server accepts; issue refs are at most 300 characters, URL-encoded')
          : new FerryError('FERRY_BAD_REQUEST', `the request is not valid HTTP/1.1 (${(error.code ?? 'parse error').replace(/[^A-Z0-9_]/gi, '')}); send a well-formed request, with either a Content-Length or chunked encoding, not both`);
  const body = JSON.stringify({
    type: `urn:ferry:problem:${problem.code}`,
    title: problem.code,
    status: problem.status,
    code: problem.code,
    detail: problem.message,
  });
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
