/**
 * Issue refs: the engagement thread a migration belongs to, normalised as
 * `<tracker>:<owner>/<repo>#<number>`. A bare `#742` takes the configured default tracker and repo.
 */
import { FerryError } from './errors.ts';

export const TRACKERS = ['github', 'gitea', 'gitlab'] as const;
export type TrackerKind = (typeof TRACKERS)[number];

export interface IssueRef {
  readonly tracker: TrackerKind;
  /** `owner/repo`; GitLab groups may nest (`group/sub/repo`). */
  readonly repo: string;
  readonly number: number;
}

const FULL = /^(github|gitea|gitlab):([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+)#([1-9]\d{0,9})$/;
const BARE = /^#([1-9]\d{0,9})$/;

/** Default tracker and repo for bare `#N` refs, e.g. `github:acme/platform`. */
export interface IssueDefaults {
  readonly tracker: TrackerKind;
  readonly repo: string;
}

export function parseIssueRef(raw: string, defaults?: IssueDefaults): IssueRef {
  const text = raw.trim();
  const full = FULL.exec(text);
  if (full) {
    const repo = full[2] as string;
    if (repo.split('/').some((part) => part === '.' || part === '..')) throw badRef(raw);
    return { tracker: full[1] as TrackerKind, repo, number: Number(full[3]) };
  }
  const bare = BARE.exec(text);
  if (bare) {
    if (!defaults) {
      throw new FerryError(
        'FERRY_INVALID_REQUEST',
        `issue ${JSON.stringify(raw)} has no tracker and repo, and no default is configured; write it as github:owner/repo#${bare[1]}`,
      );
    }
    return { tracker: defaults.tracker, repo: defaults.repo, number: Number(bare[1]) };
  }
  throw badRef(raw);
}

function badRef(raw: string): FerryError {
  return new FerryError(
    'FERRY_INVALID_REQUEST',
    `issue ${JSON.stringify(raw.slice(0, 100))} is not an issue ref; write it as <tracker>:<owner>/<repo>#<number>, e.g. github:acme/platform#742 (trackers: github, gitea, gitlab)`,
  );
}

export function formatIssueRef(ref: IssueRef): string {
  return `${ref.tracker}:${ref.repo}#${ref.number}`;
}

export function normaliseIssueRef(raw: string, defaults?: IssueDefaults): string {
  return formatIssueRef(parseIssueRef(raw, defaults));
}
