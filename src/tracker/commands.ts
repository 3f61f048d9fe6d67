/**
 * `/ferry` commands in issue comments, and who may give them.
 *
 * A command is a line that starts with `/ferry` (outside fenced code blocks, so a documented
 * example is never run). One command per comment: two commands in one comment would leave their
 * order and partial failure ambiguous, so such a comment is refused as a whole.
 */
import type { ErrorCode } from '../core/errors.ts';
import { roleAtLeast, type Role } from '../core/roles.ts';
import { RECOVERY_ACTIONS, type RecoveryAction } from '../core/types.ts';

export type FerryCommand =
  | { readonly name: 'approve' | 'cancel' | 'status'; readonly note: string | null; readonly line: string }
  | { readonly name: RecoveryAction; readonly reason: string; readonly line: string };

export type CommandErrorCode = Extract<ErrorCode, 'FERRY_UNKNOWN_COMMAND' | 'FERRY_MISSING_REASON' | 'FERRY_TOO_MANY_COMMANDS' | 'FERRY_REASON_TOO_LONG'>;

/**
 * A command that cannot be read. A value, not a thrown FerryError: it is answered in the thread
 * (a refusal reply) and never raised to a caller; its code is still one of the catalogue's.
 */
export interface CommandError {
  readonly code: CommandErrorCode;
  /** The offending command line, as written. */
  readonly line: string;
  /** A sentence that says what to write instead. */
  readonly message: string;
}

export type CommandParse = { readonly ok: true; readonly command: FerryCommand } | { readonly ok: false; readonly error: CommandError };

const SIMPLE_COMMANDS = ['approve', 'cancel', 'status'] as const;
export type CommandName = (typeof SIMPLE_COMMANDS)[number] | RecoveryAction;

/** Longest reason kept; it goes into the append-only history. */
const MAX_REASON = 500;

const USAGE = ['/ferry approve', '/ferry cancel', '/ferry status', ...RECOVERY_ACTIONS.map((action) => `/ferry ${action} <reason>`)].join(', ');

const PREFIX = /^\/ferry(?=\s|$)/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/** Every `/ferry` line of a comment, outside fenced code blocks, trimmed. */
function commandLines(body: string): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  for (const raw of body.replace(/\r\n?/g, '\n').split('\n')) {
    const open = FENCE.exec(raw);
    if (fence !== null) {
      if (open && (open[1] as string)[0] === fence[0] && (open[1] as string).length >= fence.length && raw.trim() === open[1]) fence = null;
      continue;
    }
    if (open) {
      fence = open[1] as string;
      continue;
    }
    const line = raw.trim();
    if (PREFIX.test(line)) out.push(line);
  }
  return out;
}

/** The command of a comment: `null` when it has none, else the command or a refusal with a sentence. */
export function parseCommandComment(body: string): CommandParse | null {
  const lines = commandLines(body);
  const [first] = lines;
  if (first === undefined) return null;
  if (lines.length > 1) {
    return fail('FERRY_TOO_MANY_COMMANDS', first, `this comment has ${lines.length} /ferry commands; post one command per comment`);
  }
  return parseCommandLine(first);
}

/** Parse one line that starts with `/ferry`. */
export function parseCommandLine(line: string): CommandParse {
  const text = line.trim();
  const rest = text.replace(PREFIX, '').trim();
  const [word = '', ...words] = rest.split(/\s+/);
  const name = word.toLowerCase();
  const argument = words.join(' ').trim();

  if ((SIMPLE_COMMANDS as readonly string[]).includes(name)) {
    return {
      ok: true,
      command: { name: name as (typeof SIMPLE_COMMANDS)[number], note: argument.length > 0 ? argument.slice(0, MAX_REASON) : null, line: text },
    };
  }
  if ((RECOVERY_ACTIONS as readonly string[]).includes(name)) {
    if (argument.length === 0) {
      return fail(
        'FERRY_MISSING_REASON',
        text,
        `/ferry ${name} needs a reason on the same line, e.g. \`/ferry ${name} ${EXAMPLE_REASON[name as RecoveryAction]}\`; the reason is kept in the migration's history`,
      );
    }
    if (argument.length > MAX_REASON) {
      return fail(
        'FERRY_REASON_TOO_LONG',
        text,
        `the reason is ${argument.length} characters long; keep it to ${MAX_REASON} and put details in a separate comment`,
      );
    }
    return { ok: true, command: { name: name as RecoveryAction, reason: argument, line: text } };
  }
  const what = name.length === 0 ? '/ferry needs a command' : `/ferry ${word.slice(0, 40)} is not a command`;
  return fail('FERRY_UNKNOWN_COMMAND', text, `${what}; the commands are ${USAGE}`);
}

const EXAMPLE_REASON: Readonly<Record<RecoveryAction, string>> = {
  'wipe-and-retry': 'source export was truncated, re-exported',
  resume: 'disk on the source host was full, freed space',
  'accept-partial': 'remaining rows are test data we do not need',
  abandon: 'migrating with a different tool instead',
};

function fail(code: CommandErrorCode, line: string, message: string): CommandParse {
  return { ok: false, error: { code, line, message } };
}

/** The role a command needs: status is open to filers; everything that changes a migration needs an operator. */
export function requiredRole(command: FerryCommand | CommandName): Role {
  const name = typeof command === 'string' ? command : command.name;
  return name === 'status' ? 'filer' : 'operator';
}

/** Who holds which role on a tracker, by user name. Each list defaults to empty. */
export interface RoleConfig {
  /** Users who may file requests and ask for status. `'*'` means everyone who can comment. */
  readonly filers?: readonly string[] | undefined;
  /** Users who may approve, cancel and act on held migrations. Names only: `'*'` is not honoured here. */
  readonly operators?: readonly string[] | undefined;
  /** Users with every right. Names only: `'*'` is not honoured here. */
  readonly admins?: readonly string[] | undefined;
}

export type Authorisation = { readonly ok: true; readonly role: Role } | { readonly ok: false; readonly code: 'FERRY_FORBIDDEN'; readonly message: string };

/** The highest role a user holds, or null. Names compare case-insensitively, as trackers treat them. */
export function roleOf(user: string, config: RoleConfig): Role | null {
  const name = user.trim().toLowerCase();
  if (name.length === 0) return null;
  const has = (list: readonly string[] | undefined): boolean => (list ?? []).some((entry) => entry.trim().toLowerCase() === name);
  if (has(config.admins)) return 'admin';
  if (has(config.operators)) return 'operator';
  // A wildcard would be too easy to leave in by mistake for roles that change migrations, so it
  // only opens filing and status.
  if (has(config.filers) || (config.filers ?? []).includes('*')) return 'filer';
  return null;
}

/** Whether `user` may act with `role` (admin ⊇ operator ⊇ filer); a refusal says who may. */
export function authorise(user: string, role: Role, config: RoleConfig): Authorisation {
  const held = roleOf(user, config);
  if (held !== null && roleAtLeast(held, role)) return { ok: true, role: held };
  return {
    ok: false,
    code: 'FERRY_FORBIDDEN',
    message: `${user} is not ${role === 'filer' ? 'a' : 'an'} ${role} on this tracker${held === null ? '' : ` (only ${held})`}; ask a Ferry admin to add ${user} to the ${role}s in Ferry's tracker configuration, or ask ${role === 'filer' ? 'a filer or an operator' : `an ${role}`} to do it`,
  };
}
