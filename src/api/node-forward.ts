/**
 * "Any node answers": an attempt's log and its job live on the node that started the attempt, so a
 * request for them that reaches another node is forwarded there — same method, path and query,
 * Authorization header and body — and the answer (status, content type, body) is streamed back;
 * a followed log (`?follow=true`) stays a pipe for as long as the client reads it.
 *
 * - Loop protection: the forwarded request carries `X-Ferry-Forwarded-By: <this node>`, and a
 *   request that carries it is never forwarded again: it is answered from local state.
 * - A node that is not `up`, has no address yet, refuses the connection or does not connect within
 *   5 s: 503 FERRY_NODE_UNREACHABLE with a sentence naming the node, its state, when it was last
 *   seen and what to do. Nothing is answered from elsewhere: only that node has the log or the job.
 * - Only a bearer token travels to the other node (it authenticates there again, as on any node). A
 *   console session lives in one node's memory and means nothing to another, so a cookie-signed
 *   request is not forwarded: its answer names the node to open the console on.
 *
 * Node's own HTTP client is used rather than fetch: fetch cannot time the connection apart from
 * the answer (without the undici package), and a cancel's answer may take as long as stopping a job.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { FerryError } from '../core/errors.ts';
import type { Runner } from '../runner/runner.ts';
import type { NodeRecord } from '../store/records.ts';

/** The header that marks a request as forwarded by another node (its value: that node's name). */
export const FORWARDED_BY = 'x-ferry-forwarded-by';
/** The header on a forwarded answer that names the node it came from. */
export const ANSWERED_BY = 'x-ferry-answered-by';
/** Most time to establish the connection to the other node. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Most time from the request sent to the answer's headers (a cancel waits for its job to stop). */
export const ANSWER_TIMEOUT_MS = 60_000;

/** Answer headers passed back as they are (the rest are the connection's, or this server's own). */
const PASSED_HEADERS = ['content-type', 'content-disposition', 'x-ferry-log-skipped', 'retry-after', 'location'] as const;

/** What lives on the other node, for the sentences: an attempt's log, or a running job. */
export type Forwarded =
  { readonly kind: 'log'; readonly migrationId: string; readonly attempt: number } | { readonly kind: 'job'; readonly migrationId: string };

export interface ForwardOptions {
  readonly connectTimeoutMs?: number;
  readonly answerTimeoutMs?: number;
}

/**
 * Answer `request` from `node` when that is another node: returns true once the answer is on its
 * way (the route then returns `reply`), false when this node answers (no node recorded, this
 * node, or a request already forwarded once). Throws FERRY_NODE_UNREACHABLE when the node cannot
 * be reached; nothing has been sent then.
 */
export async function forwardToNode(
  runner: Runner,
  request: FastifyRequest,
  reply: FastifyReply,
  node: string | null,
  what: Forwarded,
  opts: ForwardOptions = {},
): Promise<boolean> {
  if (node === null || node === runner.nodeName || request.headers[FORWARDED_BY] !== undefined) return false;
  const record = await runner.store.getNode(node);
  if (!record) {
    throw new FerryError('FERRY_NODE_UNREACHABLE', `${placeOf(what, node)}, which is not a node this cluster knows; nothing else has it`, {
      node,
      state: null,
    });
  }
  if (record.state !== 'up' || record.url === null) throw unreachable(what, record, null);
  const authorization = request.headers.authorization;
  if (authorization === undefined) {
    throw new FerryError(
      'FERRY_NODE_UNREACHABLE',
      `${placeOf(what, node)}, and this console session is known only to node ${runner.nodeName}: open the console of ${node} at ${record.url}/ and sign in there, or use the CLI with a token (ferry --url ${record.url} ...)`,
      details(record),
    );
  }
  const upstream = await send(record, request, authorization, runner.nodeName, what, opts);
  reply.code(upstream.statusCode ?? 502);
  for (const name of PASSED_HEADERS) {
    const value = upstream.headers[name];
    if (value !== undefined) reply.header(name, value);
  }
  reply.header(ANSWERED_BY, record.name);
  // The client going away (or this server closing) ends the exchange with the other node too, so
  // that a followed log frees its follower there.
  reply.raw.once('close', () => upstream.destroy());
  void reply.send(upstream);
  return true;
}

/** Send the request to `node`; resolves with its answer once the headers are in. */
function send(node: NodeRecord, request: FastifyRequest, authorization: string, self: string, what: Forwarded, opts: ForwardOptions): Promise<IncomingMessage> {
  // Kept whole: a node's address may carry a path (behind a proxy).
  const target = new URL(`${(node.url ?? '').replace(/\/+$/, '')}${request.url}`);
  const headers: OutgoingHttpHeaders = { authorization, [FORWARDED_BY]: self, accept: request.headers.accept ?? '*/*' };
  let payload: string | undefined;
  if (request.body !== undefined && request.body !== null && request.method !== 'GET' && request.method !== 'HEAD') {
    // The body was parsed (JSON or YAML) and checked here: it travels as JSON.
    payload = JSON.stringify(request.body);
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(payload);
  } else if (request.method !== 'GET' && request.method !== 'HEAD') {
    headers['content-length'] = 0;
  }
  const connectMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const answerMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  return new Promise<IncomingMessage>((resolve, reject) => {
    // agent: false: one connection per forwarded request, closed with it.
    const req = (target.protocol === 'https:' ? https : http).request(target, { method: request.method, headers, agent: false });
    let phase: 'connect' | 'answer' = 'connect';
    const fail = (why: string) => reject(unreachable(what, node, why));
    const connectTimer = setTimeout(() => {
      fail(`no connection to ${node.url} within ${connectMs / 1000} s`);
      req.destroy();
    }, connectMs);
    let answerTimer: NodeJS.Timeout | null = null;
    const connected = () => {
      clearTimeout(connectTimer);
      phase = 'answer';
      answerTimer = setTimeout(() => {
        fail(
          `${node.url} took the request but gave no answer within ${answerMs / 1000} s${what.kind === 'job' ? ' (the cancel may still take effect there: look at the migration again)' : ''}`,
        );
        req.destroy();
      }, answerMs);
    };
    req.once('socket', (socket) => {
      if (socket.connecting) socket.once('connect', connected);
      else connected();
    });
    req.once('response', (res) => {
      clearTimeout(connectTimer);
      if (answerTimer) clearTimeout(answerTimer);
      // An error while the body streams ends the reply (Fastify destroys it); nothing to throw then.
      res.on('error', () => undefined);
      resolve(res);
    });
    req.once('error', (err: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      if (answerTimer) clearTimeout(answerTimer);
      const code = err.code ?? err.name;
      fail(phase === 'connect' ? `${node.url} does not answer (${code})` : `the connection to ${node.url} broke before the answer (${code})`);
    });
    req.end(payload);
  });
}

/** "the log of attempt 2 of m-... is on node b" / "migration m-... runs on node b" */
function placeOf(what: Forwarded, node: string): string {
  return what.kind === 'log'
    ? `the log of attempt ${what.attempt} of ${what.migrationId} is on node ${node}`
    : `migration ${what.migrationId} runs on node ${node}`;
}

function details(node: NodeRecord): Record<string, unknown> {
  return { node: node.name, state: node.state, url: node.url, lastSeenAt: node.lastSeenAt, lostAt: node.lostAt };
}

/** The 503 for `node` when it cannot answer: where the thing is, why it is out of reach, what to do. */
export function unreachable(what: Forwarded, node: NodeRecord, why: string | null): FerryError {
  const where = placeOf(what, node.name);
  const state =
    why !== null
      ? `which is up (last seen ${node.lastSeenAt}) but cannot be reached: ${why}`
      : node.state === 'lost'
        ? `which is lost since ${node.lostAt ?? node.lastSeenAt} (last seen ${node.lastSeenAt})`
        : node.state === 'left'
          ? `which left the cluster (a clean stop; last seen ${node.lastSeenAt})`
          : `which has no API address yet (it is starting; last seen ${node.lastSeenAt})`;
  const next =
    what.kind === 'log'
      ? `it is served again when ${node.name} is back`
      : node.state === 'up'
        ? `only ${node.name} can stop its job: cancel again once ${node.name} answers; if it stays away, the other nodes hold the migration lost once its lease has run out, and a held migration can be cancelled from any node`
        : node.state === 'left'
          ? `only ${node.name} can stop its job: cancel again once ${node.name} is started again`
          : `only ${node.name} can stop its job: cancel again once ${node.name} is back, or once the migration is held lost (then any node cancels it)`;
  return new FerryError('FERRY_NODE_UNREACHABLE', `${where}, ${state}; ${next}`, details(node));
}
