/**
 * The operator console's files (src/console/: HTML, CSS and ES modules, no build step), served at
 * `/` (the page) and `/console/<file>`. They are read once at start and kept in memory with their
 * gzip form and an ETag; every answer carries a strict Content-Security-Policy (scripts, styles,
 * connections and images from this origin only; no inline script, no framing).
 *
 * Caching: `no-cache` with an ETag, so that a browser revalidates (a 304 costs a round trip, not
 * the file) and never runs an old page against a newer server.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { FerryError } from '../core/errors.ts';

const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface ConsoleFile {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer | null;
  readonly etag: string;
}

function loadFiles(dir: string): Map<string, ConsoleFile> {
  const files = new Map<string, ConsoleFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    const gzip = type.startsWith('image/png') ? null : gzipSync(body, { level: 9 });
    files.set(name, {
      type,
      body,
      gzip: gzip && gzip.length < body.length ? gzip : null,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    });
  }
  return files;
}

function serve(file: ConsoleFile, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-cache')
    .header('etag', file.etag)
    .header('vary', 'accept-encoding')
    .type(file.type);
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
  const acceptsGzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  if (file.gzip && acceptsGzip) return reply.header('content-encoding', 'gzip').send(file.gzip);
  return reply.send(file.body);
}

/** Registers `/` and `/console/:file`. `dir` defaults to src/console (for tests, another folder). */
export function registerConsoleRoutes(app: FastifyInstance, dir: string = CONSOLE_DIR): void {
  const files = loadFiles(dir);
  const index = files.get('index.html');
  app.get('/', async (request, reply) => {
    if (!index) throw new FerryError('FERRY_NOT_FOUND', 'the console is not part of this installation (src/console/index.html is missing)');
    return serve(index, request, reply);
  });
  app.get<{ Params: { file: string } }>('/console/:file', async (request, reply) => {
    const file = files.get(request.params.file);
    if (!file || request.params.file === 'index.html')
      throw new FerryError(
        'FERRY_NOT_FOUND',
        `no console file ${JSON.stringify(request.params.file.slice(0, 80))}; the console is the page at the root of this server`,
      );
    return serve(file, request, reply);
  });
}
