/**
 * Who may do what, in one ranking: `filer` (file, check, read) ⊂ `operator` (approve, act, cancel,
 * close issues) ⊂ `admin` (tenants, and everything else). API tokens (src/api/auth.ts) and tracker
 * users (src/tracker/commands.ts) hold these same roles.
 */

/** The roles, lowest first: each holds every right of the ones before it. */
export const ROLES = ['filer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Whether a holder of `held` may do what needs `needed`: `needed` or a role above it. */
export function roleAtLeast(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}
