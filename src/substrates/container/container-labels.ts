/**
 * The labels that make a container or volume Ferry's, and the names Ferry gives them. Everything a
 * re-attach needs is a label on the job's container, so `watch(ref)` works from a fresh process.
 */
import type { ArtifactKind, LabelledObject } from '../substrate.ts';

export type Labels = Record<string, string>;

export const ROLE = 'ferry.role';
export const LABEL_LOG_PATH = 'ferry.log-path';
export const LABEL_LOG_START = 'ferry.log-start';
export const LABEL_TIMEOUT_MS = 'ferry.timeout-ms';
export const LABEL_LOG_LIMIT = 'ferry.log-limit';

/**
 * Roles of Ferry's containers: a step's job, a snapshot/restore copy helper, or a volume helper
 * (ownership of scratch and tenant data). All are removed as kind `job`.
 */
export const JOB_ROLES: ReadonlySet<string> = new Set(['migration', 'snapshot-helper', 'volume-helper']);

export function labelled(kind: ArtifactKind, ref: string, labels: Labels): LabelledObject {
  return { kind, ref, migrationId: labels['ferry.migration'] ?? '', issue: labels['ferry.issue'] ?? '' };
}

/** Container and volume names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. */
export function safeName(id: string): string {
  return id.replace(/[^a-zA-Z0-9_.-]/g, '-');
}
