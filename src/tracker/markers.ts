/**
 * Hidden HTML markers that open every comment Ferry writes. They let Ferry find its status comment
 * again and recognise its own comments (so it never acts on them), whatever its bot user is called.
 */

export const FERRY_MARKER_PREFIX = '<!-- ferry:';

export type CommentKind = 'verdict' | 'status' | 'closure' | 'reply';

const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** `<!-- ferry:status:<migrationId> -->`, `<!-- ferry:verdict -->`, ... */
export function marker(kind: CommentKind, migrationId?: string): string {
  if (migrationId === undefined) return `${FERRY_MARKER_PREFIX}${kind} -->`;
  if (!MIGRATION_ID.test(migrationId)) throw new TypeError(`migration id ${JSON.stringify(migrationId)} cannot be put in a marker`);
  return `${FERRY_MARKER_PREFIX}${kind}:${migrationId} -->`;
}

const STATUS = /^<!-- ferry:status:([A-Za-z0-9][A-Za-z0-9._:-]{0,127}) -->/;

/**
 * The migration id of a status comment, read from its first line; `null` for any other comment.
 * Only the first line counts, so a marker quoted in a log tail or a user's comment is never taken.
 */
export function statusMarkerOf(body: string): string | null {
  return STATUS.exec(body)?.[1] ?? null;
}
