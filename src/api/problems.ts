/**
 * Every error the API answers is `application/problem+json` (RFC 9457) with a stable `code` from
 * the catalogue (src/core/errors.ts). Errors that are not Ferry's own — Fastify's (a body too
 * large, a bad URL, an unsupported content type), the store's (a full disk) and Node's HTTP parser's
 * (before Fastify sees the request) — are mapped to a code here, once.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { FerryError, coerceError, type ErrorCode } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import { RejectedError } from '../runner/runner.ts';
import { MAX_PARAM_LENGTH } from './request-params.ts';

const TITLES: Partial<Record<ErrorCode, string>> = {
  FERRY_REJECTED: 'Rejected by the admission rule',
  FERRY_INVALID_REQUEST: 'Invalid request',
  FERRY_WRONG_STATE: 'Wrong state',
};

/** The fields every problem has; `details` of the error are added by the caller. */
function problemBody(problem: FerryError): Record<string, unknown> {
  return {
    type: `urn:ferry:problem:${problem.code}`,
    title: TITLES[problem.code] ?? problem.code,
    status: problem.status,
    code: problem.code,
    detail: problem.message,
  };
}

/**
 * Answer `error` as a problem. A 5xx is logged with its stack; `storageFull` is asked when the
 * error is otherwise unexplained (default: never full).
 */
export function sendProblem(reply: FastifyReply, error: unknown, request: FastifyRequest, log?: LogFn, storageFull: () => boolean = () => false): FastifyReply {
  let problem = toFerryError(error);
  // SQLite's "disk full" often reaches us masked (a failed commit, then a failed rollback): ask the disk.
  if (problem.code === 'FERRY_INTERNAL' && storageFull()) problem = storageFullError(error);
  if (problem.status >= 500) log?.('error', `${request.method} ${request.url}: ${coerceError(error).stack ?? String(error)}`);
  const body = problemBody(problem);
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

/** Fastify's and the store's errors as catalogue errors; anything unexplained is FERRY_INTERNAL. */
function toFerryError(error: unknown): FerryError {
  if (error instanceof FerryError) return error;
  const e = coerceError(error) as Error & { statusCode?: number; code?: string };
  const status = e.statusCode;
  if (e.code === 'SQLITE_FULL' || e.code === 'ENOSPC') return storageFullError(error);
  if (status === 413) return new FerryError('FERRY_PAYLOAD_TOO_LARGE', 'the body is larger than this server accepts (bodyLimit); send a smaller document');
  if (status === 414 || e.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return new FerryError(
      'FERRY_URI_TOO_LONG',
      `a part of the URL is longer than ${MAX_PARAM_LENGTH} characters; issue refs are at most 300 characters, URL-encoded`,
    );
  }
  if (e.code === 'FST_ERR_BAD_URL')
    return new FerryError('FERRY_BAD_REQUEST', 'the URL is not valid (a bad %-escape?); URL-encode issue refs with encodeURIComponent');
  if (status === 415) return new FerryError('FERRY_UNSUPPORTED_MEDIA_TYPE', `content type not supported; send application/json or application/yaml`);
  if (status !== undefined && status >= 400 && status < 500) {
    const what = e.code?.startsWith('FST_ERR_CTP') ? 'the body could not be parsed' : 'bad request';
    return new FerryError('FERRY_BAD_REQUEST', `${what}: ${firstLine(e.message)}`);
  }
  return new FerryError('FERRY_INTERNAL', 'internal error; the server log has the details', {}, { cause: error });
}

function storageFullError(cause: unknown): FerryError {
  return new FerryError(
    'FERRY_STORAGE_FULL',
    "the disk holding Ferry's data folder is full, so nothing was recorded; free space and send the request again",
    {},
    { cause },
  );
}

/** The first line of a parser's message, at most 300 characters: enough to find the fault, no echo of the body. */
export function firstLine(text: string): string {
  return text.split('\n')[0]?.slice(0, 300) ?? '';
}

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (a malformed request line, a body
 * where none may be, headers too large, too slow): answered as problem+json with a code, then the
 * connection is closed, as Node does by default.
 */
export function clientError(
  error: Error & { code?: string },
  socket: Duplex,
  timeouts: { readonly headersTimeout: number; readonly requestTimeout: number },
): void {
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
          : new FerryError(
              'FERRY_BAD_REQUEST',
              `the request is not valid HTTP/1.1 (${(error.code ?? 'parse error').replace(/[^A-Z0-9_]/gi, '')}); send a well-formed request, with either a Content-Length or chunked encoding, not both`,
            );
  const body = JSON.stringify(problemBody(problem));
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
