/**
 * Short comments addressed to people by name: to the author of a request that could not be read,
 * notes answering a filing, an edit or a command on a closed thread, the answer to `/ferry status`,
 * and the one comment that asks the operators to act on a held migration. The standing comments
 * (verdict, status, closure summary, command refusals) are in comments.ts. Same rules: a hidden
 * marker first, user text in code spans.
 */
import type { FailureCause, MigrationState } from '../core/types.ts';
import { code } from './comments.ts';
import { marker } from './markers.ts';
import { stepLabel } from '../core/steps.ts';

/** The ferry block could not be read (YAML, schema, issue field): what is wrong and how to fix it. */
export function renderInvalidRequest(author: string, message: string): string {
  return (
    [
      marker('verdict'),
      '### Ferry: request not readable',
      '',
      `@${author}: the \`ferry\` block of this issue was not filed. ${oneLine(message)}`,
      '',
      'Fix the block in the issue description and save the issue: Ferry reads it again.',
    ].join('\n') + '\n'
  );
}

/** A short reply to someone in the thread (why something was not done, or what happened instead). */
export function renderThreadNote(author: string | null, message: string): string {
  return `${marker('reply')}\n${author === null ? '' : `@${author}: `}${oneLine(message)}\n`;
}

export interface HeldNotice {
  readonly migrationId: string;
  readonly tenant: string;
  readonly attempt: number;
  readonly cause: FailureCause | 'gate';
  readonly failedStep: number;
  readonly stepName: string;
  /** Operators (or, when none is configured, admins) to mention. */
  readonly operators: readonly string[];
}

/** The comment that asks the operators to choose a recovery action. Posted once per hold. */
export function renderHeldNotice(n: HeldNotice): string {
  const who = n.operators.length > 0 ? n.operators.map((name) => `@${name}`).join(' ') : 'Operators';
  const why =
    n.cause === 'gate'
      ? `the admission gate refused to start attempt ${n.attempt + 1}`
      : `attempt ${n.attempt} failed at step ${stepLabel(n.failedStep)} (${code(n.stepName)}, cause \`${n.cause}\`)`;
  return (
    [
      marker('reply'),
      `${who}: migration ${code(n.migrationId)} is **held**: ${why}.`,
      '',
      `Nothing runs and nothing is cleaned up; later migrations of tenant ${code(n.tenant)} wait. The status comment of this migration shows the cause, the last checkpoint, the log tail and what each action would do. Choose one by commenting:`,
      '',
      '- `/ferry resume <reason>`',
      '- `/ferry wipe-and-retry <reason>`',
      '- `/ferry accept-partial <reason>`',
      '- `/ferry abandon <reason>`',
    ].join('\n') + '\n'
  );
}

export interface StatusReply {
  readonly author: string;
  readonly migrationId: string;
  readonly state: MigrationState;
  readonly attempt: number;
  readonly detail: string | null;
}

/** Answer to `/ferry status`: one line; the status comment has the rest. */
export function renderStatusReply(r: StatusReply): string {
  const attempt = r.attempt === 0 ? 'no attempt yet' : `attempt ${r.attempt}`;
  const detail = r.detail === null ? '' : ` ${oneLine(r.detail)}`;
  return `${marker('reply')}\n@${r.author}: migration ${code(r.migrationId)} is **${r.state}** (${attempt}).${detail} Its status comment in this thread is kept up to date.\n`;
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
