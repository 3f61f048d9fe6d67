/**
 * The Markdown Ferry writes into engagement threads: the verdict on a filed request, the one status
 * comment per migration (edited in place), the closure summary, and replies to refused commands.
 *
 * Every comment opens with a hidden marker (see markers.ts): that is how a status comment is found
 * again and how Ferry recognises, and ignores, its own comments. Everything a user or a job wrote
 * (log lines, checkpoints, command lines) is put in code spans or fences sized to fit, so it can
 * never close them early or inject Markdown.
 */
import { formatQuantity } from '../core/quantity.ts';
import { describeActions, type HeldFacts } from '../core/recovery.ts';
import { RECOVERY_ACTIONS, type FailureCause, type MigrationState, type RejectionReason, type Verdict } from '../core/types.ts';
import { marker } from './markers.ts';
import { WIPE_STEP, stepLabel } from '../core/steps.ts';

// ---------------------------------------------------------------- verdict

export interface VerdictCommentOptions {
  /** The migration the request was filed as; omit when nothing was filed (a check, or a rejection). */
  readonly migrationId?: string | null | undefined;
}

export function renderVerdictComment(verdict: Verdict, options: VerdictCommentOptions = {}): string {
  const id = options.migrationId ?? null;
  const out = [id === null ? marker('verdict') : marker('verdict', id)];
  out.push(verdict.ok ? '### Ferry: request admitted' : '### Ferry: request rejected', '');
  if (verdict.dimensions.length > 0) {
    out.push('| Dimension | Declared peak | Steady-state | Cap (2x) | Result |', '|---|---|---|---|---|');
    for (const d of verdict.dimensions) {
      const steady = d.steadyState === null ? '—' : formatQuantity(d.dimension, d.steadyState);
      const cap = d.cap === null ? '—' : formatQuantity(d.dimension, d.cap);
      out.push(
        `| ${cell(d.dimension)} | ${formatQuantity(d.dimension, d.peak)} | ${steady} | ${cap} | ${d.ok ? 'pass' : `**fail**${failureNote(verdict, d.dimension)}`} |`,
      );
    }
    out.push('');
  }
  out.push(`Checked at ${verdict.at} against the steady-state of tenant ${code(verdict.tenant)}.`, '');
  if (verdict.ok) {
    if (id !== null) out.push(`Filed as migration ${code(id)}. It starts after an operator approves it with \`/ferry approve\`.`);
  } else {
    out.push('**Why, and how to fix it:**', '');
    for (const reason of verdict.reasons) out.push(`- ${oneLine(reason.message)}`);
    out.push('', 'Fix the request in the `ferry` block of the issue description and save the issue: Ferry checks it again.');
    if (id !== null) out.push('', `Recorded as migration ${code(id)} (rejected).`);
  }
  return out.join('\n') + '\n';
}

function failureNote(verdict: Verdict, dimension: string): string {
  const codes = new Set(verdict.reasons.filter((r) => r.dimension === dimension || r.dimension === undefined).map((r) => r.code));
  const notes: string[] = [];
  if (codes.has('UNKNOWN_TENANT')) notes.push('unknown tenant');
  if (codes.has('NO_STEADY_STATE')) notes.push('no steady-state');
  if (codes.has('PEAK_EXCEEDS_CAP')) notes.push('over 2x steady-state');
  if (codes.has('PEAK_EXCEEDS_CAPACITY')) notes.push('over node capacity');
  return notes.length === 0 ? '' : `: ${notes.join(', ')}`;
}

// ---------------------------------------------------------------- status

export interface HeldView {
  readonly cause: FailureCause;
  /** What the runner recorded about the failure, e.g. `exit code 3`. Optional. */
  readonly detail?: string | null | undefined;
  readonly facts: HeldFacts;
  /** The last lines of the failed step's log, as recorded. */
  readonly logTail: string;
}

/** The migration that holds the tenant while this one waits. */
export interface TenantHolderView {
  readonly migrationId: string;
  readonly issue: string;
  /** Web address of the holder's thread. */
  readonly url: string;
  readonly state: MigrationState;
}

export interface StatusView {
  readonly migrationId: string;
  /** This migration's thread. */
  readonly issue: string;
  readonly tenant: string;
  readonly state: MigrationState;
  /** Number of the current or last attempt; 0 before the first one. */
  readonly attempt: number;
  /** Step names, in order. */
  readonly steps: readonly string[];
  /** 0-based index of the running step, while running. */
  readonly currentStep?: number | null | undefined;
  /** Last `::ferry::progress done/total` the running step reported. */
  readonly progress?: { readonly done: number; readonly total: number } | null | undefined;
  /** Set when `held`. */
  readonly held?: HeldView | null | undefined;
  /** Set when queued behind another migration that holds the tenant. */
  readonly waitingFor?: TenantHolderView | null | undefined;
  /** The gate's reasons when it refused (rejected, or an action refused while held). */
  readonly gateReasons?: readonly RejectionReason[] | null | undefined;
  readonly updatedAt: string;
  /**
   * The request's secret env values (`env: {NAME: {secret: ...}}`). The job may print them, so the
   * log tail, the checkpoint and the failure detail are shown with each replaced by `(secret)`.
   * Default none.
   */
  readonly secretValues?: readonly string[] | undefined;
}

const CAUSES: Readonly<Record<FailureCause, string>> = {
  'exit-code': 'the step exited with a non-zero status',
  'limit-exceeded': 'the job went over its declared peak (its hard limits) and was stopped',
  deadline: 'the step ran past its timeout and was stopped',
  lost: 'Ferry could not find the job any more (for example after a restart) and did not run it again',
  cancelled: 'the attempt was cancelled',
};

/** Log tail kept in a comment: trackers cap comments at about 64 KiB, and the tail is what matters. */
const LOG_LINES = 40;
const LOG_CHARS = 6000;

export function renderStatusComment(unmasked: StatusView): string {
  const view = maskStatusView(unmasked);
  const out = [marker('status', view.migrationId), `### Ferry: migration ${code(view.migrationId)} — ${view.state}`, '', headline(view), ''];
  out.push(`- **State:** ${view.state}`);
  out.push(`- **Tenant:** ${code(view.tenant)}`);
  out.push(`- **Attempt:** ${view.attempt === 0 ? 'none yet' : String(view.attempt)}`);
  if (view.state === 'running' && view.currentStep !== null && view.currentStep !== undefined) {
    out.push(`- **Step:** ${view.currentStep + 1} of ${view.steps.length} (${code(view.steps[view.currentStep] ?? `step ${view.currentStep + 1}`)})`);
  }
  if (view.progress !== null && view.progress !== undefined) out.push(`- **Progress:** ${progress(view.progress.done, view.progress.total)}`);

  if (view.gateReasons !== null && view.gateReasons !== undefined && view.gateReasons.length > 0) {
    out.push(
      '',
      view.state === 'held' ? '**The admission gate refused the last action; the migration stays held:**' : '**The admission gate refused it:**',
      '',
    );
    for (const reason of view.gateReasons) out.push(`- ${oneLine(reason.message)}`);
  }

  if (view.state === 'held' && view.held !== null && view.held !== undefined) out.push('', ...heldSection(view.held, view.migrationId));
  out.push('', `<sub>Updated ${view.updatedAt}. Ferry keeps this comment up to date.</sub>`);
  return out.join('\n') + '\n';
}

function headline(view: StatusView): string {
  switch (view.state) {
    case 'filed':
      return 'Filed. Waiting for an operator to approve it with `/ferry approve`.';
    case 'approved':
      return 'Approved. Waiting for the admission gate.';
    case 'queued': {
      const holder = view.waitingFor;
      if (holder === null || holder === undefined)
        return view.attempt === 0 ? 'Queued. It starts when the runner has a free slot.' : `Queued for attempt ${view.attempt + 1}.`;
      const where = holder.issue === view.issue ? 'of this thread' : `of ${link(holder.issue, holder.url)}`;
      return `Waiting: tenant ${code(view.tenant)} is held by migration ${code(holder.migrationId)} ${where} (${holder.state}). This migration starts after that one ends.`;
    }
    case 'running':
      return `Running attempt ${view.attempt}.`;
    case 'held':
      return `Held: attempt ${view.attempt} failed. Nothing runs, nothing is cleaned up, and later migrations of tenant ${code(view.tenant)} wait until an operator chooses one of the actions below.`;
    case 'succeeded':
      return `Succeeded in attempt ${view.attempt}. Closing the issue removes the job's artifacts (scratch space, logs, snapshot); tenant data stays.`;
    case 'rejected':
      return 'Rejected by the admission gate. Nothing ran.';
    case 'accepted-partial':
      return 'Ended as accepted-partial: the tenant data was kept as it is.';
    case 'abandoned':
      return 'Abandoned: the tenant data was kept as it is.';
    case 'cancelled':
      return 'Cancelled.';
  }
}

/** What a thread shows instead of a secret value. */
const SECRET_SHOWN = '(secret)';

/** The view with every secret value replaced in the text that comes from the job. */
function maskStatusView(view: StatusView): StatusView {
  // Longest first, so that a secret inside another is not half shown.
  const secrets = [...new Set(view.secretValues ?? [])].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  if (secrets.length === 0 || !view.held) return view;
  const mask = (text: string): string => secrets.reduce((t, secret) => t.split(secret).join(SECRET_SHOWN), text);
  const { held } = view;
  return {
    ...view,
    held: {
      ...held,
      logTail: mask(held.logTail),
      detail: held.detail === null || held.detail === undefined ? held.detail : mask(held.detail),
      facts: { ...held.facts, checkpoint: held.facts.checkpoint === null ? null : mask(held.facts.checkpoint) },
    },
  };
}

function heldSection(held: HeldView, migrationId: string): string[] {
  const { facts } = held;
  const stepName = facts.failedStep === WIPE_STEP ? 'wipe' : (facts.stepNames[facts.failedStep] ?? `step ${stepLabel(facts.failedStep)}`);
  const detail = held.detail === null || held.detail === undefined || held.detail.length === 0 ? '' : ` (${oneLine(escapeText(held.detail))})`;
  const out = [
    '#### Why it is held',
    '',
    `- **Cause:** \`${held.cause}\`: ${CAUSES[held.cause]}${detail}`,
    `- **Failed step:** ${stepLabel(facts.failedStep)} of ${facts.stepNames.length} (${code(stepName)})`,
    `- **Last checkpoint:** ${facts.checkpoint === null ? 'none' : code(facts.checkpoint)}`,
    '',
    'Log tail:',
    '',
    ...fenced(tail(held.logTail, migrationId), 'text'),
    '',
    '#### What an operator can do',
    '',
    'Comment one of these (the reason is required and kept in the history):',
    '',
    '| Command | What it does |',
    '|---|---|',
  ];
  const actions = describeActions(facts);
  for (const action of RECOVERY_ACTIONS) out.push(`| \`/ferry ${action} <reason>\` | ${cell(actions[action])} |`);
  return out;
}

function progress(done: number, total: number): string {
  if (total <= 0) return `${done}`;
  return `${done}/${total} (${Math.floor((Math.min(done, total) * 100) / total)}%)`;
}

function tail(log: string, migrationId: string): string {
  // Strip terminal colour codes; they render as noise in a tracker.
  const clean = log
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\r\n?/g, '\n')
    .replace(/\n+$/, '');
  if (clean.length === 0) return '(no output)';
  let lines = clean.split('\n');
  let cut = false;
  if (lines.length > LOG_LINES) {
    lines = lines.slice(-LOG_LINES);
    cut = true;
  }
  let text = lines.join('\n');
  if (text.length > LOG_CHARS) {
    text = text.slice(-LOG_CHARS);
    text = text.slice(text.indexOf('\n') + 1);
    cut = true;
  }
  return cut ? `… (earlier lines: ferry logs ${migrationId})\n${text}` : text;
}

// ---------------------------------------------------------------- closure

export interface RemovedArtifact {
  readonly migrationId: string;
  /** e.g. scratch, log, snapshot, credentials, process, container, volume, job. */
  readonly kind: string;
  /** The artifact's name or path on the substrate. */
  readonly name: string;
}

export interface ClosureSummary {
  readonly issue: string;
  /** Migrations the closure cancelled, with the state each was in. */
  readonly cancelled: readonly { readonly migrationId: string; readonly from: MigrationState }[];
  readonly removed: readonly RemovedArtifact[];
  /** Artifacts not removed yet; Ferry retries them. */
  readonly pending?: readonly (RemovedArtifact & { readonly error: string })[] | undefined;
}

export function renderClosureSummary(summary: ClosureSummary): string {
  const pending = summary.pending ?? [];
  const out = [marker('closure'), '### Ferry: issue closed', ''];
  if (summary.cancelled.length > 0) {
    out.push(`Cancelled: ${summary.cancelled.map((c) => `${code(c.migrationId)} (was ${c.from})`).join(', ')}.`, '');
  }
  if (summary.removed.length === 0) {
    out.push('No job artifacts to remove.');
  } else {
    out.push(
      `Removed ${summary.removed.length} job artifact${summary.removed.length === 1 ? '' : 's'}:`,
      '',
      '| Migration | Kind | Artifact |',
      '|---|---|---|',
    );
    for (const a of summary.removed) out.push(`| ${code(a.migrationId)} | ${cell(a.kind)} | ${cell(code(a.name))} |`);
  }
  if (pending.length > 0) {
    out.push(
      '',
      `Not removed yet (${pending.length}); Ferry retries them and updates nothing else meanwhile:`,
      '',
      '| Migration | Kind | Artifact | Error |',
      '|---|---|---|---|',
    );
    for (const a of pending) out.push(`| ${code(a.migrationId)} | ${cell(a.kind)} | ${cell(code(a.name))} | ${cell(oneLine(escapeText(a.error)))} |`);
  }
  out.push('', "Tenant data is not a job artifact and was left as it is. The migrations' history is kept. Reopening the issue recreates nothing.");
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- replies

export interface CommandRefusal {
  /** Who wrote the command (mentioned in the reply). */
  readonly author: string;
  /** The command line as written, or null when the comment as a whole was refused. */
  readonly line: string | null;
  /** A sentence saying why and what to do (from commands.ts, authorise(), or a FerryError). */
  readonly message: string;
}

export function renderCommandRefusal(refusal: CommandRefusal): string {
  const what = refusal.line === null ? 'your command was' : `${code(refusal.line)} was`;
  return `${marker('reply')}\n@${refusal.author}: ${what} not applied. ${oneLine(refusal.message)}\n`;
}

// ---------------------------------------------------------------- Markdown helpers

/** Inline code that survives any content: the fence is longer than any backtick run inside. */
export function code(text: string): string {
  const flat = oneLine(text);
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}

/** A fenced block whose fence no line of the content can close. */
function fenced(text: string, info: string): string[] {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [`${fence}${info}`, text, fence];
}

/** A Markdown link to an http(s) address; plain text when the address is anything else. */
function link(text: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return escapeText(text);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return escapeText(text);
  return `[${escapeText(text)}](${parsed.href.replace(/\(/g, '%28').replace(/\)/g, '%29')})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Neutralise Markdown and HTML in short free text shown outside code. */
function escapeText(text: string): string {
  return text.replace(/[\\`*_{}[\]()<>#|!~]/g, (c) => `\\${c}`);
}
