/**
 * Hidden HTML markers that open every comment Ferry writes. They let Ferry recognise its own comments
 * (so it never acts on them), whatever its bot user is called; a status comment's marker names its
 * migration for a reader. Ferry finds its status comment again by the id the outbox stored
 * (`store.threads.statusCommentId()`), not by searching the thread for the marker.
 */
import { MIGRATION_ID_PATTERN } from '../core/migration-id.ts';

export const FERRY_MARKER_PREFIX = '<!-- ferry:';

export type CommentKind = 'verdict' | 'status' | 'closure' | 'reply';

/** `<!-- ferry:status:<migrationId> -->`, `<!-- ferry:verdict -->`, ... */
export function marker(kind: CommentKind, migrationId?: string): string {
  if (migrationId === undefined) return `${FERRY_MARKER_PREFIX}${kind} -->`;
  if (!MIGRATION_ID_PATTERN.test(migrationId)) throw new TypeError(`migration id ${JSON.stringify(migrationId)} cannot be put in a marker`);
  return `${FERRY_MARKER_PREFIX}${kind}:${migrationId} -->`;
}
