/**
 * One shape for every paged list of the API (GET /v1/migrations, GET /v1/tenants): `limit` (100
 * unless given, at most 500) and an opaque `cursor` in the query; the body stays a JSON array, as
 * before paging, and when there is more, the `X-Ferry-Next-Cursor` header (and a `Link: rel="next"`
 * with the same query) gives the cursor of the next page. No header: that was the last page.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';

/** Items per page when the query has no `limit`. */
export const DEFAULT_PAGE = 100;
/** Most items a page may ask for. */
export const MAX_PAGE = 500;

/** The paging fields of a list's query schema (spread into its strictObject). */
export const pageFields = {
  limit: z
    .string()
    .regex(/^[1-9]\d{0,2}$/, `must be a number from 1 to ${MAX_PAGE}`)
    .refine((v) => Number(v) <= MAX_PAGE, `must be a number from 1 to ${MAX_PAGE}`)
    .optional(),
  cursor: z.string().max(400).optional(),
};

export function pageLimit(raw: string | undefined): number {
  return raw === undefined ? DEFAULT_PAGE : Number(raw);
}

/** A cursor that says where the next page starts: the fields of the last item shown, opaque to clients. */
export function encodeCursor(fields: Readonly<Record<string, string>>): string {
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

/**
 * The fields of a cursor this server made, as `read` takes them; anything else (not base64url
 * JSON of an object, or refused by `read`) is a 400 that says `howTo` start again.
 */
export function decodeCursor<T>(raw: string, read: (fields: Record<string, unknown>) => T | null, howTo: string): T {
  const bad = () => new FerryError('FERRY_BAD_REQUEST', `cursor is not one this server gave (${howTo}); start again without it`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad();
  const value = read(parsed as Record<string, unknown>);
  if (value === null) throw bad();
  return value;
}

/** Tell the client where the next page starts: `X-Ferry-Next-Cursor`, and `Link` with `path` and the same query. */
export function announceNextPage(reply: FastifyReply, path: string, query: unknown, cursor: string): void {
  const next = new URLSearchParams((query ?? {}) as Record<string, string>);
  next.set('cursor', cursor);
  reply.header('x-ferry-next-cursor', cursor).header('link', `<${path}?${next.toString()}>; rel="next"`);
}
