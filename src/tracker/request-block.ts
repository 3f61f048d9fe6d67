/**
 * The request document inside an issue: the first fenced code block whose info string is `ferry`
 * (``` or ~~~ fences, CommonMark rules), parsed as YAML. The `issue` field may be left out: the
 * thread the block lives in is the issue. If it is there it must name that same thread.
 */
import { parseDocument } from 'yaml';
import { documentBoundsProblem, valueDepthProblem } from '../core/document-bounds.ts';
import { FerryError } from '../core/errors.ts';
import { parseIssueRef, type IssueRef } from '../core/issue-ref.ts';

export interface RequestBlock {
  /** The block's content, fence lines excluded, indentation of the fence removed. */
  readonly source: string;
  /** 1-based line of the issue body where the content starts (the line after the opening fence). */
  readonly firstLine: number;
}

/** Longest request block read; an issue body is at most 65536 characters on GitHub anyway. */
const MAX_BLOCK = 64 * 1024;

const OPEN = /^( {0,3})(`{3,}|~{3,})(.*)$/;

/**
 * Find the first `ferry` block. `null` when the body has none (the issue is discussion, not a
 * request). An opened but never closed `ferry` fence is an error: the user meant a request.
 */
export function findRequestBlock(body: string): RequestBlock | null {
  const lines = body.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i] as string);
    if (!open) continue;
    const indent = (open[1] as string).length;
    const fence = open[2] as string;
    const info = (open[3] as string).trim();
    // CommonMark: a backtick fence's info string may not contain a backtick (that is inline code).
    if (fence[0] === '`' && info.includes('`')) continue;
    const close = closingIndex(lines, i + 1, fence);
    const isFerry = (info.split(/\s+/)[0] ?? '').toLowerCase() === 'ferry';
    if (!isFerry) {
      // Skip the whole block, so a ferry example quoted inside another block is not taken.
      i = close === -1 ? lines.length : close;
      continue;
    }
    if (close === -1) {
      throw new FerryError('FERRY_INVALID_REQUEST', `the ferry block opened on line ${i + 1} of the issue is never closed; end it with a line of ${fence}`, {
        line: i + 1,
      });
    }
    const content = lines.slice(i + 1, close).map((line) => stripIndent(line, indent));
    const source = content.join('\n');
    if (source.length > MAX_BLOCK) {
      throw new FerryError('FERRY_INVALID_REQUEST', `the ferry block is longer than ${MAX_BLOCK} characters; shorten it`, { line: i + 1 });
    }
    return { source, firstLine: i + 2 };
  }
  return null;
}

function closingIndex(lines: readonly string[], from: number, fence: string): number {
  const char = fence[0] === '`' ? '`' : '~';
  const pattern = new RegExp(`^ {0,3}${char}{${fence.length},}[ \\t]*$`);
  for (let j = from; j < lines.length; j++) if (pattern.test(lines[j] as string)) return j;
  return -1;
}

function stripIndent(line: string, indent: number): string {
  let n = 0;
  while (n < indent && line[n] === ' ') n++;
  return line.slice(n);
}

/**
 * Read the request document of an issue body, with `issue` set to the thread's ref.
 * `null` when the body has no ferry block. Throws FERRY_INVALID_REQUEST with `details.line` (a line
 * of the issue body) when the YAML is broken, when it is not a mapping, or when its `issue` names
 * another thread.
 */
export function readRequestBlock(body: string, threadRef: string): Record<string, unknown> | null {
  const block = findRequestBlock(body);
  if (block === null) return null;
  const thread = parseIssueRef(threadRef);

  // Before parsing: a deeply nested block would overflow the YAML parser's stack (and can abort Node).
  const bounds = documentBoundsProblem(block.source, 'yaml', { maxLength: MAX_BLOCK });
  if (bounds !== null)
    throw new FerryError(
      bounds.kind === 'depth' ? 'FERRY_DOCUMENT_TOO_DEEP' : 'FERRY_INVALID_REQUEST',
      `the ferry block starting at line ${block.firstLine} of the issue: ${bounds.message}`,
      { line: block.firstLine },
    );
  const doc = parseDocument(block.source, { prettyErrors: true, uniqueKeys: true });
  const [error] = doc.errors;
  if (error !== undefined) {
    const blockLine = error.linePos?.[0].line ?? 1;
    const line = block.firstLine + blockLine - 1;
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the ferry block is not valid YAML at line ${line} of the issue (line ${blockLine} of the block): ${firstSentence(error.message)}; fix the block and edit the issue`,
      { line, blockLine },
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // yaml throws on alias expansion past maxAliasCount (a "billion laughs" block).
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the ferry block starting at line ${block.firstLine} of the issue cannot be read: ${firstSentence((err as Error).message)}; write it without repeating anchors`,
      { line: block.firstLine },
    );
  }
  const expanded = valueDepthProblem(value);
  if (expanded !== null)
    throw new FerryError(
      'FERRY_DOCUMENT_TOO_DEEP',
      `the ferry block starting at line ${block.firstLine} of the issue, with its aliases expanded: ${expanded.message}`,
      { line: block.firstLine },
    );
  if (value === null || value === undefined) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the ferry block starting at line ${block.firstLine} of the issue is empty; write the request in it (tenant, peak, steps)`,
      {
        line: block.firstLine,
      },
    );
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the ferry block starting at line ${block.firstLine} of the issue must be a YAML mapping (tenant:, peak:, steps:), not a ${Array.isArray(value) ? 'list' : 'single value'}`,
      {
        line: block.firstLine,
      },
    );
  }
  const document = { ...(value as Record<string, unknown>) };
  if ('issue' in document) checkIssueField(document.issue, thread, threadRef, block.firstLine + lineOfKey(block.source, 'issue'));
  document.issue = threadRef;
  return document;
}

function checkIssueField(raw: unknown, thread: IssueRef, threadRef: string, line: number): void {
  const remove = `remove the issue field from the ferry block: a request filed in an issue belongs to that issue (${threadRef})`;
  if (typeof raw !== 'string') {
    throw new FerryError('FERRY_INVALID_REQUEST', `the ferry block's issue field is not an issue ref; ${remove}`, { line });
  }
  let named: IssueRef;
  try {
    // A bare `#742` means this tracker and repository.
    named = parseIssueRef(raw, { tracker: thread.tracker, repo: thread.repo });
  } catch {
    throw new FerryError('FERRY_INVALID_REQUEST', `the ferry block's issue field ${JSON.stringify(raw.slice(0, 100))} is not an issue ref; ${remove}`, {
      line,
    });
  }
  // Trackers route owner and repository names case-insensitively.
  if (named.tracker !== thread.tracker || named.repo.toLowerCase() !== thread.repo.toLowerCase() || named.number !== thread.number) {
    throw new FerryError('FERRY_INVALID_REQUEST', `the ferry block's issue field names ${raw.trim()}, but the block is in ${threadRef}; ${remove}`, { line });
  }
}

/** 0-based line of a top-level key in the block, for error messages; 0 when not found. */
function lineOfKey(source: string, key: string): number {
  const index = source.split('\n').findIndex((line) => line.startsWith(`${key}:`) || line.startsWith(`"${key}":`) || line.startsWith(`'${key}':`));
  return index === -1 ? 0 : index;
}

function firstSentence(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '').trim();
}
