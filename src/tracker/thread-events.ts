/**
 * Tracker payloads, once verified, normalised into one `ThreadEvent` union: an issue was opened,
 * edited, closed or reopened, or a comment was posted. Everything else a tracker can send (labels,
 * assignments, comment edits, pull-request comments, pings) is `null`: acknowledged and ignored.
 *
 * Payload schemas are deliberately non-strict (trackers add fields over time); only the fields
 * read here are validated. A payload of a relevant event that lacks them is a FERRY_BAD_REQUEST.
 */
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import { formatIssueRef, parseIssueRef, type TrackerKind } from '../core/issue-ref.ts';
import { FERRY_MARKER_PREFIX } from './markers.ts';

export type IssueEventKind = 'issue-opened' | 'issue-edited' | 'issue-closed' | 'issue-reopened';

export type ThreadEvent =
  | {
      readonly kind: IssueEventKind;
      /** Normalised issue ref, e.g. `github:acme/platform#742`, `gitlab:group/sub/repo#5`. */
      readonly issue: string;
      /** The issue's description ('' when empty). */
      readonly body: string;
      /** Who did it: the opener, editor, closer or reopener. */
      readonly author: string;
      /** The issue's web page. */
      readonly url: string;
    }
  | {
      readonly kind: 'comment';
      readonly issue: string;
      readonly body: string;
      readonly author: string;
      /** The tracker's comment (GitLab: note) id, as a string. */
      readonly commentId: string;
      /** The comment's web page. */
      readonly url: string;
    };

export interface ThreadEventOptions {
  /**
   * Ferry's own user on the tracker (e.g. `ferry-bot`, or `ferry[bot]` for a GitHub App). Its
   * comments are ignored so that Ferry never reacts to itself. Default: none; comments that carry
   * Ferry's hidden marker are ignored either way.
   */
  readonly botUser?: string | undefined;
}

/** Parse a verified delivery body (JSON) and normalise it. Throws FERRY_BAD_REQUEST. */
export function parseThreadEventBody(tracker: TrackerKind, event: string, rawBody: Buffer, options: ThreadEventOptions = {}): ThreadEvent | null {
  let payload: unknown;
  try {
    payload = JSON.parse(rawBody.toString('utf8'));
  } catch (err) {
    throw new FerryError(
      'FERRY_BAD_REQUEST',
      `the ${tracker} delivery body is not JSON; set the webhook's content type to application/json`,
      { tracker, event },
      { cause: err },
    );
  }
  return parseThreadEvent(tracker, event, payload, options);
}

/** Normalise a verified, parsed payload. `null` for events Ferry does not act on. Throws FERRY_BAD_REQUEST. */
export function parseThreadEvent(tracker: TrackerKind, event: string, payload: unknown, options: ThreadEventOptions = {}): ThreadEvent | null {
  const parsed = tracker === 'github' ? fromGitHub(event, payload) : tracker === 'gitea' ? fromGitea(event, payload) : fromGitLab(event, payload);
  if (parsed === null) return null;
  if (parsed.kind === 'comment' && isOwnComment(parsed.author, parsed.body, options.botUser)) return null;
  return parsed;
}

/** Whether a comment is Ferry's own: by its author, or by the marker every Ferry comment starts with. */
function isOwnComment(author: string, body: string, botUser: string | undefined): boolean {
  if (botUser !== undefined && botUser.length > 0 && author.toLowerCase() === botUser.toLowerCase()) return true;
  return body.trimStart().startsWith(FERRY_MARKER_PREFIX);
}

// ---------------------------------------------------------------- GitHub

const ISSUE_ACTIONS: Readonly<Record<string, IssueEventKind>> = {
  opened: 'issue-opened',
  edited: 'issue-edited',
  closed: 'issue-closed',
  reopened: 'issue-reopened',
};

const action = z.object({ action: z.string() });
const login = z.object({ login: z.string().min(1) });
const fullName = z.object({ full_name: z.string().min(1) });
const positiveInt = z.number().int().positive();
const text = z
  .string()
  .nullish()
  .transform((value) => value ?? '');

const githubIssue = z.object({
  number: positiveInt,
  body: text,
  html_url: z.string().min(1),
  pull_request: z.unknown().optional(),
});
const githubIssues = z.object({ action: z.string(), issue: githubIssue, repository: fullName, sender: login });
const githubComment = z.object({
  action: z.string(),
  issue: githubIssue,
  comment: z.object({ id: positiveInt, body: text, html_url: z.string().min(1), user: login }),
  repository: fullName,
});

function fromGitHub(event: string, payload: unknown): ThreadEvent | null {
  if (event === 'issues') {
    const kind = ISSUE_ACTIONS[read(action, payload, 'github', event).action];
    if (kind === undefined) return null;
    const p = read(githubIssues, payload, 'github', event);
    return { kind, issue: ref('github', p.repository.full_name, p.issue.number), body: p.issue.body, author: p.sender.login, url: p.issue.html_url };
  }
  if (event === 'issue_comment') {
    // Edits and deletions do not replay commands: a command acts once, when it is posted.
    if (read(action, payload, 'github', event).action !== 'created') return null;
    const p = read(githubComment, payload, 'github', event);
    // GitHub reports pull-request conversation comments as issue_comment too; threads are issues.
    if (p.issue.pull_request !== undefined && p.issue.pull_request !== null) return null;
    return {
      kind: 'comment',
      issue: ref('github', p.repository.full_name, p.issue.number),
      body: p.comment.body,
      author: p.comment.user.login,
      commentId: String(p.comment.id),
      url: p.comment.html_url,
    };
  }
  return null;
}

// ---------------------------------------------------------------- Gitea / Forgejo

const giteaIssue = z.object({ number: positiveInt, body: text, html_url: z.string().min(1) });
const giteaIssues = z.object({ action: z.string(), issue: giteaIssue, repository: fullName, sender: login });
const giteaComment = z.object({
  action: z.string(),
  issue: giteaIssue,
  comment: z.object({ id: positiveInt, body: text, html_url: z.string().min(1), user: login }),
  repository: fullName,
  is_pull: z.boolean().optional(),
});

function fromGitea(event: string, payload: unknown): ThreadEvent | null {
  if (event === 'issues') {
    const kind = ISSUE_ACTIONS[read(action, payload, 'gitea', event).action];
    if (kind === undefined) return null;
    const p = read(giteaIssues, payload, 'gitea', event);
    return { kind, issue: ref('gitea', p.repository.full_name, p.issue.number), body: p.issue.body, author: p.sender.login, url: p.issue.html_url };
  }
  if (event === 'issue_comment') {
    if (read(action, payload, 'gitea', event).action !== 'created') return null;
    const p = read(giteaComment, payload, 'gitea', event);
    if (p.is_pull === true) return null;
    return {
      kind: 'comment',
      issue: ref('gitea', p.repository.full_name, p.issue.number),
      body: p.comment.body,
      author: p.comment.user.login,
      commentId: String(p.comment.id),
      url: p.comment.html_url,
    };
  }
  return null;
}

// ---------------------------------------------------------------- GitLab

const GITLAB_ISSUE_ACTIONS: Readonly<Record<string, IssueEventKind>> = {
  open: 'issue-opened',
  update: 'issue-edited',
  close: 'issue-closed',
  reopen: 'issue-reopened',
};

const gitlabUser = z.object({ username: z.string().min(1) });
const gitlabProject = z.object({ path_with_namespace: z.string().min(1) });
const gitlabIssueHook = z.object({
  user: gitlabUser,
  project: gitlabProject,
  object_attributes: z.object({ iid: positiveInt, action: z.string().optional(), description: text, url: z.string().min(1) }),
});
const gitlabNoteKind = z.object({
  object_attributes: z.object({ noteable_type: z.string(), action: z.string().optional(), system: z.boolean().nullish() }),
});
const gitlabNoteHook = z.object({
  user: gitlabUser,
  project: gitlabProject,
  object_attributes: z.object({ id: positiveInt, note: text, url: z.string().min(1) }),
  issue: z.object({ iid: positiveInt }),
});

function fromGitLab(event: string, payload: unknown): ThreadEvent | null {
  if (event === 'Issue Hook' || event === 'Confidential Issue Hook') {
    const p = read(gitlabIssueHook, payload, 'gitlab', event);
    const kind = p.object_attributes.action === undefined ? undefined : GITLAB_ISSUE_ACTIONS[p.object_attributes.action];
    if (kind === undefined) return null;
    return {
      kind,
      issue: ref('gitlab', p.project.path_with_namespace, p.object_attributes.iid),
      body: p.object_attributes.description,
      author: p.user.username,
      url: p.object_attributes.url,
    };
  }
  if (event === 'Note Hook' || event === 'Confidential Note Hook') {
    const k = read(gitlabNoteKind, payload, 'gitlab', event).object_attributes;
    // Only new, human comments on issues; `action` is absent on GitLab versions before 16.11.
    if (k.noteable_type !== 'Issue' || k.system === true || (k.action !== undefined && k.action !== 'create')) return null;
    const p = read(gitlabNoteHook, payload, 'gitlab', event);
    return {
      kind: 'comment',
      issue: ref('gitlab', p.project.path_with_namespace, p.issue.iid),
      body: p.object_attributes.note,
      author: p.user.username,
      commentId: String(p.object_attributes.id),
      url: p.object_attributes.url,
    };
  }
  return null;
}

// ---------------------------------------------------------------- shared

function read<T>(schema: z.ZodType<T>, payload: unknown, tracker: TrackerKind, event: string): T {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 10).map((issue) => `${issue.path.map(String).join('.') || '(payload)'}: ${issue.message}`);
  throw new FerryError('FERRY_BAD_REQUEST', `the ${tracker} ${event} payload is malformed: ${problems.join('; ')}`, { tracker, event, problems });
}

function ref(tracker: TrackerKind, repo: string, number: number): string {
  try {
    return formatIssueRef(parseIssueRef(`${tracker}:${repo}#${number}`));
  } catch (err) {
    throw new FerryError(
      'FERRY_BAD_REQUEST',
      `the ${tracker} payload names a repository Ferry cannot address: ${JSON.stringify(repo.slice(0, 200))}`,
      { tracker },
      { cause: err },
    );
  }
}
