/**
 * The HTTP API (Fastify). JSON in and out; request documents may also be YAML. Every error is
 * `application/problem+json` with a stable `code`; nothing is written unless the whole request is
 * valid.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FerryError, coerceError, type ErrorCode } from '../core/errors.ts';
import { normaliseIssueRef } from '../core/issue-ref.ts';
import { TENANT_ID, validate } from '../core/request-schema.ts';
import { MIGRATION_STATES, RECOVERY_ACTIONS, type MigrationState } from '../core/types.ts';
import { RejectedError, type Runner } from '../runner/runner.ts';
import type { DeliveryHandler } from '../tracker/thread-service.ts';
import { requireRole, type Principal, type Role, type TokenRegistry } from './auth.ts';
import { registerHooks } from './hooks.ts';
import { migrationDetail, migrationSummary } from './views.ts';

export interface ApiOptions {
  readonly runner: Runner;
  readonly tokens: TokenRegistry;
  readonly bodyLimit: number;
  /** Receives tracker webhooks (src/api/hooks.ts); without one every delivery is refused. */
  readonly hooks?: DeliveryHandler | undefined;
  readonly log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

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
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  const { runner, tokens } = opts;
  const store = runner.store;
  // forceCloseConnections: a stop must not wait for keep-alive sockets or log followers.
  const app = Fastify({ bodyLimit: opts.bodyLimit, logger: false, return503OnClosing: true, forceCloseConnections: true });
  let closing = false;
  app.addHook('onClose', async () => {
    closing = true;
  });

  // Only JSON and YAML documents: anything else (text/plain included) is a 415.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit: opts.bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseYaml(body as string, { uniqueKeys: true, maxAliasCount: 50, prettyErrors: true }) ?? undefined);
    } catch (err) {
      done(new FerryError('FERRY_BAD_REQUEST', `the body is not valid YAML: ${firstLine((err as Error).message)}`), undefined);
    }
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

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(runner.metrics.registry.contentType);
    return runner.metrics.registry.metrics();
  });

  // ── tenants ──
  app.put<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('admin') }, async (request, reply) => {
    const id = tenantParam(request.params.id);
    const { tenant, created } = await runner.putTenant(id, request.body);
    reply.code(created ? 201 : 200);
    return tenant;
  });
  app.get('/v1/tenants', { onRequest: auth('filer') }, async () => store.listTenants());
  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { onRequest: auth('filer') }, async (request) => {
    const id = tenantParam(request.params.id);
    const tenant = await store.getTenant(id);
    if (!tenant) throw new FerryError('FERRY_NOT_FOUND', `no tenant ${id}; register it with PUT /v1/tenants/${id}`);
    return tenant;
  });

  // ── migrations ──
  app.post('/v1/migrations/check', { onRequest: auth('filer') }, async (request, reply) => {
    const verdict = await runner.check(request.body);
    if (!verdict.ok) throw new RejectedError(verdict, null);
    reply.code(200);
    return { ok: true, verdict };
  });

  app.post('/v1/migrations', { onRequest: auth('filer') }, async (request, reply) => {
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
    return list.map(migrationSummary);
  });

  app.get<{ Params: { id: string } }>('/v1/migrations/:id', { onRequest: auth('filer') }, async (request) => {
    const m = await store.requireMigration(migrationParam(request.params.id));
    return migrationDetail(store, m);
  });

  app.get<{ Params: { id: string } }>('/v1/migrations/:id/logs', { onRequest: auth('filer') }, async (request, reply) => {
    const id = migrationParam(request.params.id);
    const q = queryParams(logsQuery, request.query);
    const m = await store.requireMigration(id);
    const number = q.attempt !== undefined ? Number(q.attempt) : m.attempts;
    if (number === 0) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has not started an attempt yet, so it has no log`);
    const attempt = await store.getAttempt(id, number);
    if (!attempt) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has no attempt ${number}`);
    reply.type('text/plain; charset=utf-8');
    // A follower stops when the attempt ends, the client goes away, or the server closes.
    const gone = () => closing || request.raw.destroyed;
    return Readable.from(streamLog(attempt.logRef, q.follow === 'true' ? async () => gone() || (await store.getAttempt(id, number))?.endedAt !== null : null));
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/approve', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    validate(approveBody, request.body, 'approval');
    const m = await runner.approve(id, actor(request));
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/cancel', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    const body = validate(cancelBody, request.body, 'cancel request');
    const m = await runner.cancel(id, actor(request), body?.reason ?? 'cancelled by an operator');
    return migrationDetail(store, m);
  });

  app.post<{ Params: { id: string } }>('/v1/migrations/:id/actions', { onRequest: auth('operator') }, async (request) => {
    const id = migrationParam(request.params.id);
    const body = validate(actionBody, request.body, 'action');
    const m = await runner.act(id, body.action, body.reason, actor(request));
    return migrationDetail(store, m);
  });

  app.post<{ Params: { ref: string } }>('/v1/issues/:ref/close', { onRequest: auth('operator') }, async (request) => {
    validate(approveBody, request.body, 'close request');
    return runner.closeIssue(issueParam(request.params.ref, runner), actor(request));
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

/** The log file from the start; with `ended`, keeps following until the attempt ends and all is read. */
async function* streamLog(path: string, ended: (() => Promise<boolean>) | null): AsyncGenerator<Buffer> {
  let offset = 0;
  const buf = Buffer.allocUnsafe(1 << 16);
  for (;;) {
    const size = await stat(path).then((s) => s.size, () => 0);
    if (size > offset) {
      const fh = await open(path, 'r');
      try {
        while (offset < size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - offset), offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          yield Buffer.from(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    }
    if (!ended) return;
    if (await ended()) {
      const final = await stat(path).then((s) => s.size, () => 0);
      if (final <= offset) return;
      continue;
    }
    await new Promise((r) => setTimeout(r, 200));
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
