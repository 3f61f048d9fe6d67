/**
 * Step indexes. A request's steps are numbered from 0 in the code and from 1 for people; the
 * request's `wipe` command, which `wipe-and-retry` runs before step 1 when there is no snapshot to
 * restore, is the step before them all (docs/decisions.md, "Lifecycle").
 */

/** Index of the wipe step. A migration held at it has `failedStep` WIPE_STEP; `resume` reruns it. */
export const WIPE_STEP = -1;

/** A step as people read it: 'wipe', or its 1-based number. */
export function stepLabel(index: number): string {
  return index === WIPE_STEP ? 'wipe' : String(index + 1);
}

/** The name of step `index` of a request, 'wipe' for the wipe step, or `step N` past the end. */
export function stepName(request: { readonly steps: ReadonlyArray<{ readonly name: string }> }, index: number): string {
  if (index === WIPE_STEP) return 'wipe';
  return request.steps[index]?.name ?? `step ${stepLabel(index)}`;
}
