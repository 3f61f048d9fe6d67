/**
 * Recovery actions on a held migration (TR-42): what each one would do, decided purely.
 * Only an operator's action creates attempt n+1; each needs an actor and a reason.
 */
import { FerryError } from './errors.ts';
import type { RecoveryAction } from './types.ts';
import { WIPE_STEP, stepLabel } from './steps.ts';

export interface HeldFacts {
  readonly attempts: number;
  /** Index of the step that failed in the last attempt (0-based). */
  readonly failedStep: number;
  /** Last checkpoint the failed step reported, in any attempt, or null. */
  readonly checkpoint: string | null;
  /** When the pre-migration snapshot was taken, or null when there is none. */
  readonly snapshotAt: string | null;
  readonly hasWipeStep: boolean;
  readonly stepNames: readonly string[];
}

/** What heldFactsOf() reads of a held migration (a MigrationRecord has all of it). */
export interface HeldMigration {
  readonly attempts: number;
  readonly failedStep: number | null;
  readonly checkpoint: { readonly step: number; readonly text: string } | null;
  readonly snapshot: { readonly at: string } | null;
  readonly request: { readonly wipe?: readonly string[] | undefined; readonly steps: ReadonlyArray<{ readonly name: string }> };
}

/**
 * The one reading of a held migration's facts, for the recovery plan, the API and the thread alike.
 * The failed step is the one recorded on the migration; a hold that recorded none (the runner lost
 * the attempt before a step ended) falls back to the step the last attempt was at, then to the first.
 * A checkpoint counts only when that step reported it: resume continues the step it came from.
 */
export function heldFactsOf(m: HeldMigration, lastAttemptStep: number | null = null): HeldFacts {
  const failedStep = m.failedStep ?? lastAttemptStep ?? 0;
  return {
    attempts: m.attempts,
    failedStep,
    checkpoint: m.checkpoint !== null && m.checkpoint.step === failedStep ? m.checkpoint.text : null,
    snapshotAt: m.snapshot?.at ?? null,
    hasWipeStep: m.request.wipe !== undefined,
    stepNames: m.request.steps.map((s) => s.name),
  };
}

export type RecoveryPlan =
  | { readonly action: 'wipe-and-retry'; readonly restore: 'snapshot' | 'wipe-step'; readonly fromStep: 0; readonly checkpoint: null }
  | { readonly action: 'resume'; readonly fromStep: number; readonly checkpoint: string | null }
  | { readonly action: 'accept-partial' | 'abandon' };

export function planRecovery(action: RecoveryAction, facts: HeldFacts): RecoveryPlan {
  switch (action) {
    case 'wipe-and-retry':
      if (facts.snapshotAt !== null) return { action, restore: 'snapshot', fromStep: 0, checkpoint: null };
      if (facts.hasWipeStep) return { action, restore: 'wipe-step', fromStep: 0, checkpoint: null };
      throw new FerryError(
        'FERRY_NO_WIPE',
        'wipe-and-retry needs a way to wipe: this migration has no pre-migration snapshot and its request has no wipe step; choose resume, accept-partial or abandon, or file a new request with a wipe step',
      );
    case 'resume':
      return { action, fromStep: facts.failedStep, checkpoint: facts.checkpoint };
    case 'accept-partial':
    case 'abandon':
      return { action };
  }
}

/** One sentence per action saying what it would do for this migration (status pages, issue threads). */
export function describeActions(facts: HeldFacts): Record<RecoveryAction, string> {
  const failed = facts.failedStep === WIPE_STEP ? 'the wipe step' : (facts.stepNames[facts.failedStep] ?? `step ${stepLabel(facts.failedStep)}`);
  const wipe =
    facts.snapshotAt !== null
      ? `restores the snapshot taken at ${facts.snapshotAt} and reruns from step 1`
      : facts.hasWipeStep
        ? "runs the request's wipe step, then reruns from step 1"
        : 'not available: no snapshot and no wipe step';
  return {
    'wipe-and-retry': wipe,
    resume: `reruns from step ${stepLabel(facts.failedStep)} (${failed})${facts.checkpoint === null ? ' with no checkpoint' : ` with checkpoint ${JSON.stringify(facts.checkpoint)}`}`,
    'accept-partial': 'ends the migration as accepted-partial and keeps the tenant data as it is',
    abandon: 'ends the migration as abandoned and keeps the tenant data as it is',
  };
}
