/**
 * GET /v1/migrations/:id/logs (filer): an attempt's log, read once or followed
 * (`?follow=true`) until the attempt ends. Followers share one tail per log and are bounded per
 * token and in all (src/api/log-followers.ts). Secret env values are masked in the text served;
 * the file on disk keeps what the job wrote.
 *
 * `?tail=BYTES` serves only about the last BYTES of the log as it is when asked (from the first
 * whole line), then, with `follow`, everything written after: the console shows a 100 MB log this
 * way. The header `X-Ferry-Log-Skipped` says how many bytes were left out. `?download=true` asks
 * the browser to save the log as a file.
 *
 * A log is on the node that ran its attempt: asked of another node, the request is forwarded there
 * and its answer streamed back (src/api/node-forward.ts), or answered 503 FERRY_NODE_UNREACHABLE
 * when that node is down.
 */
import type { FastifyInstance } from 'fastify';
import { stat } from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import type { Runner } from '../runner/runner.ts';
import { DEFAULT_FOLLOWER_LIMITS, LogFollowers, type FollowerLimits } from './log-followers.ts';
import { forwardToNode } from './node-forward.ts';
import { migrationParam, queryParams } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';
import { secretValues } from './views.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The log followers of this API (src/api/log-followers.ts). */
    logFollowers: LogFollowers;
  }
}

const logsQuery = z.strictObject({
  attempt: z
    .string()
    .regex(/^[1-9]\d{0,5}$/, 'must be an attempt number')
    .optional(),
  follow: z.enum(['true', 'false']).optional(),
  tail: z
    .string()
    .regex(/^[1-9]\d{0,9}$/, 'must be a number of bytes')
    .optional(),
  download: z.enum(['true', 'false']).optional(),
});

/** A follower dropped for not reading is sent a closing line; one that does not read even that loses its connection after this. */
const DROPPED_FOLLOWER_GRACE_MS = 10_000;

/** Registers the log route and its followers, which end when the server closes. Limits default to DEFAULT_FOLLOWER_LIMITS. */
export function registerLogRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess, limits: FollowerLimits = DEFAULT_FOLLOWER_LIMITS): void {
  const { auth, principalOf, visibleMigration } = access;
  const store = runner.store;
  const followers = new LogFollowers({
    limits,
    attemptEnded: async (id, n) => (await store.getAttempt(id, n))?.endedAt != null,
  });
  app.addHook('onClose', async () => {
    followers.close();
  });
  // For tests and /metrics-like introspection: how many followers and shared tails there are.
  app.decorate('logFollowers', followers);

  app.get<{ Params: { id: string } }>('/v1/migrations/:id/logs', { onRequest: auth('filer') }, async (request, reply) => {
    const id = migrationParam(request.params.id);
    const q = queryParams(logsQuery, request.query);
    const m = await visibleMigration(request, id);
    const number = q.attempt !== undefined ? Number(q.attempt) : m.attempts;
    if (number === 0) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has not started an attempt yet, so it has no log`);
    const attempt = await store.getAttempt(id, number);
    if (!attempt) throw new FerryError('FERRY_NOT_FOUND', `migration ${id} has no attempt ${number}`);
    // The log is on the node that ran the attempt: another node's is forwarded there (node-forward.ts).
    if (await forwardToNode(runner, request, reply, attempt.node, { kind: 'log', migrationId: id, attempt: number })) return reply;
    const secrets = secretValues(m.request);
    const skip = q.tail === undefined ? 0 : Math.max(0, (await logSize(attempt.logRef)) - Number(q.tail));
    // A tail is read from just before its cut, not from the start of a log that may be gigabytes:
    // early enough that a secret crossing the cut is whole for the masker, and one byte more, which
    // tells whether the cut falls at a line's start.
    const from = Math.max(0, skip - 1 - Math.max(0, ...secrets.map((v) => Buffer.byteLength(v))));
    const source = { migrationId: id, attempt: number, path: attempt.logRef, secrets, from };
    reply.header('x-ferry-log-skipped', String(skip));
    if (q.download === 'true') reply.header('content-disposition', `attachment; filename="${id}-attempt-${number}.log"`);
    if (q.follow !== 'true') {
      reply.type('text/plain; charset=utf-8');
      return reply.send(skipping(followers.readOnce(source), skip - from));
    }
    // A follower stops when the attempt ends, the client goes away, or the server closes.
    const stream = followers.follow(source, principalOf(request).name);
    // The response closes when it is finished or the client goes away: the follower's place is freed.
    reply.raw.once('close', () => stream.destroy());
    stream.once('dropped', () => {
      setTimeout(() => request.raw.socket?.destroy(), DROPPED_FOLLOWER_GRACE_MS).unref();
    });
    reply.type('text/plain; charset=utf-8');
    return reply.send(skipping(stream, skip - from));
  });
}

async function logSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * `source` without its first `skip` bytes and the rest of the line they end in.
 */
function skipping(source: Readable, skip: number): Readable {
  if (skip === 0) return source;
  let left = skip;
  let inLine = true;
  const out = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      let buf = chunk;
      if (left > 0) {
        if (buf.length <= left) {
          left -= buf.length;
          if (left === 0) inLine = buf[buf.length - 1] !== 10;
          return done();
        }
        inLine = buf[left - 1] !== 10;
        buf = buf.subarray(left);
        left = 0;
      }
      if (inLine) {
        const nl = buf.indexOf(10);
        if (nl < 0) return done();
        buf = buf.subarray(nl + 1);
        inLine = false;
      }
      done(null, buf);
    },
  });
  // Closing the response closes the follower (and frees its place), as without a tail.
  out.once('close', () => source.destroy());
  source.once('error', (err) => out.destroy(err));
  return source.pipe(out);
}
