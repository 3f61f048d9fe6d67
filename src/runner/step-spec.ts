/** What the substrate is told to run for one step of an attempt, with the job's FERRY_* environment. */
import { WIPE_STEP } from '../core/steps.ts';
import type { Step, Tenant } from '../core/types.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { StepSpec } from '../substrates/substrate.ts';

export interface StepPlace {
  readonly tenant: Tenant;
  readonly attempt: number;
  readonly stepIndex: number;
  /** The attempt's first step: the one that gets the resume checkpoint. */
  readonly fromStep: number;
  readonly logRef: string;
  readonly scratchRef: string;
}

/** Step `index` of the request; the wipe step is the request's `wipe` command, with no timeout. */
function stepAt(m: MigrationRecord, index: number): Step | undefined {
  return index === WIPE_STEP ? { name: 'wipe', run: m.request.wipe ?? [], timeoutMs: undefined } : m.request.steps[index];
}

export function stepSpec(m: MigrationRecord, { tenant, attempt, stepIndex, fromStep, logRef, scratchRef }: StepPlace): StepSpec {
  const step = stepAt(m, stepIndex) as Step;
  const env: Record<string, string> = {
    ...m.request.env,
    FERRY_MIGRATION_ID: m.id,
    FERRY_ATTEMPT: String(attempt),
    FERRY_STEP: step.name,
    FERRY_TENANT: m.tenant,
  };
  const checkpoint = m.next?.checkpoint ?? null;
  if (checkpoint !== null && stepIndex === fromStep) env.FERRY_CHECKPOINT = checkpoint;
  return {
    migrationId: m.id,
    issue: m.issue,
    tenant,
    attempt,
    stepIndex,
    stepName: step.name,
    argv: step.run,
    env,
    limits: m.peak,
    timeoutMs: step.timeoutMs,
    image: m.request.image,
    scratchRef,
    logPath: logRef,
  };
}
