/**
 * The migration lifecycle as one transition table (README.md "Lifecycle"; docs/architecture.md).
 *
 *   filed ──approve──▶ approved ──gate-pass──▶ queued ──start──▶ running ──succeed──▶ succeeded
 *   filed/approved/queued ──reject──▶ rejected              running ──fail──▶ held
 *   held ──wipe-and-retry | resume──▶ queued   held ──accept-partial──▶ accepted-partial
 *   held ──abandon──▶ abandoned                queued (after an attempt) ──refuse──▶ held
 *   any non-terminal ──cancel──▶ cancelled
 *
 * Nothing leaves `held` except an operator's recovery action or a cancel (issue closure).
 */
import { FerryError } from './errors.ts';
import { TERMINAL_STATES, type MigrationState } from './types.ts';

export type LifecycleEvent =
  'approve' | 'gate-pass' | 'reject' | 'refuse' | 'start' | 'succeed' | 'fail' | 'wipe-and-retry' | 'resume' | 'accept-partial' | 'abandon' | 'cancel';

interface Row {
  readonly from: MigrationState;
  readonly event: LifecycleEvent;
  readonly to: MigrationState;
}

const NON_TERMINAL: readonly MigrationState[] = ['filed', 'approved', 'queued', 'running', 'held'];

/** Every allowed move. A move not in this table is illegal. */
export const TRANSITIONS: readonly Row[] = [
  { from: 'filed', event: 'approve', to: 'approved' },
  { from: 'approved', event: 'gate-pass', to: 'queued' },
  { from: 'filed', event: 'reject', to: 'rejected' },
  { from: 'approved', event: 'reject', to: 'rejected' },
  // The gate runs again before every attempt: a migration that never ran is rejected...
  { from: 'queued', event: 'reject', to: 'rejected' },
  // ...one that already ran an attempt goes back to held with the gate's reasons.
  { from: 'queued', event: 'refuse', to: 'held' },
  { from: 'queued', event: 'start', to: 'running' },
  { from: 'running', event: 'succeed', to: 'succeeded' },
  { from: 'running', event: 'fail', to: 'held' },
  { from: 'held', event: 'wipe-and-retry', to: 'queued' },
  { from: 'held', event: 'resume', to: 'queued' },
  { from: 'held', event: 'accept-partial', to: 'accepted-partial' },
  { from: 'held', event: 'abandon', to: 'abandoned' },
  ...NON_TERMINAL.map((from) => ({ from, event: 'cancel' as const, to: 'cancelled' as const })),
];

const INDEX = new Map<string, MigrationState>(TRANSITIONS.map((row) => [`${row.from}:${row.event}`, row.to]));

/** The state `event` leads to from `from`; throws FERRY_WRONG_STATE naming both when illegal. */
export function transition(from: MigrationState, event: LifecycleEvent): MigrationState {
  const to = INDEX.get(`${from}:${event}`);
  if (to === undefined) {
    throw new FerryError('FERRY_WRONG_STATE', wrongStateMessage(from, event), { state: from, event });
  }
  return to;
}

export function isTerminal(state: MigrationState): boolean {
  return TERMINAL_STATES.has(state);
}

/**
 * Which migrations hold their tenant: these states always, and these others once an attempt has run
 * (a retry waiting in `queued` must not let another migration start on half-migrated data). The one
 * source of the rule: the store builds its queries from it, and a store test checks that the partial
 * unique index `one_holder_per_tenant` (schema migration 0001) refuses exactly what it says.
 */
export const HOLDER_RULE = { always: ['running', 'held'], afterAnAttempt: ['queued'] } as const satisfies Record<string, readonly MigrationState[]>;

/** Whether a migration in `state`, having started `attempts` attempts, holds its tenant. */
export function holdsTenant(state: MigrationState, attempts: number): boolean {
  return (
    (HOLDER_RULE.always as readonly MigrationState[]).includes(state) ||
    ((HOLDER_RULE.afterAnAttempt as readonly MigrationState[]).includes(state) && attempts > 0)
  );
}

function wrongStateMessage(from: MigrationState, event: LifecycleEvent): string {
  const allowed = TRANSITIONS.filter((row) => row.event === event).map((row) => row.from);
  const where = allowed.length ? `only from ${[...new Set(allowed)].join(', ')}` : 'never';
  if (isTerminal(from)) return `the migration is ${from}, which is final; ${event} is allowed ${where}`;
  return `the migration is ${from}; ${event} is allowed ${where}`;
}
