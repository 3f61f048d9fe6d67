/**
 * Bounds on a request document (YAML or JSON) checked before it is parsed, so that no document can
 * exhaust the parser's stack. The yaml package composes nodes recursively: about 800 nested flow
 * collections overflow it, and after a caught overflow V8 may abort the whole process while
 * compiling a regular expression ("RegExpCompiler Allocation failed"). V8's JSON.parse is iterative,
 * but what reads the parsed value afterwards (schemas, JSON.stringify, the YAML composer) is not.
 *
 * - JSON: one pass over the text counting `[`/`{` outside strings. JSON strings are unambiguous.
 * - YAML: nesting has many spellings (flow brackets, indentation, compact `- - - x` sequences,
 *   explicit `? ` keys, mixes of these), and whether a `[` or a quote is structure depends on
 *   YAML's context rules. Rather than imitate those rules (and be wrong where a quote hides a
 *   bracket), the scan runs the yaml package's own lexer and CST parser, which are iterative
 *   (an explicit stack, no recursion), and stops as soon as their stack is deeper than the bound.
 *   That is exactly the nesting the composer will recurse through, for every form, and the scan
 *   costs nothing extra on a hostile document because it stops at the bound.
 * - Aliases cannot make the text deeper, but `*a` inside an anchored deep node repeats it, so the
 *   parsed value can be deeper than the text: `valueDepthProblem` checks the value (iteratively)
 *   after parsing, before anything else reads it.
 */
import { Lexer, Parser } from 'yaml';
import { FerryError } from './errors.ts';

/** Deepest nesting accepted; a migration request nests 5 levels, a tracker's webhook payload about 8. Default 64. */
export const MAX_DOCUMENT_DEPTH = 64;

/**
 * Most keys in one YAML mapping. The yaml package checks keys for duplicates pairwise, so a
 * mapping of n keys costs n²: 40,000 keys hold the event loop for 11 s. A request has a few
 * (env at most 256). Default 1000.
 */
export const MAX_MAPPING_KEYS = 1000;

/** Most values (collections and scalars) walked in a parsed value; past it the value is refused. Default 1,000,000. */
export const MAX_DOCUMENT_NODES = 1_000_000;

export interface DocumentLimits {
  /** Deepest nesting accepted. Default MAX_DOCUMENT_DEPTH. */
  readonly maxDepth?: number;
  /** Longest text accepted, in UTF-16 code units (characters). Default: no bound here (the caller's body limit). */
  readonly maxLength?: number;
  /** Most keys in one YAML mapping. Default MAX_MAPPING_KEYS. */
  readonly maxMappingKeys?: number;
}

export type DocumentFormat = 'json' | 'yaml';

export interface BoundsProblem {
  readonly kind: 'depth' | 'size' | 'keys';
  /** A sentence that says what to do. */
  readonly message: string;
  readonly limit: number;
}

/** Whether `text` stays within the limits; `null` when it does. Never parses more than the bound. */
export function documentBoundsProblem(text: string, format: DocumentFormat, limits: DocumentLimits = {}): BoundsProblem | null {
  const maxDepth = limits.maxDepth ?? MAX_DOCUMENT_DEPTH;
  if (limits.maxLength !== undefined && text.length > limits.maxLength) {
    return { kind: 'size', limit: limits.maxLength, message: `the document is longer than ${limits.maxLength} characters; shorten it` };
  }
  if (format === 'json') return jsonDepthExceeds(text, maxDepth) ? depthProblem(maxDepth) : null;
  const maxKeys = limits.maxMappingKeys ?? MAX_MAPPING_KEYS;
  const found = yamlExceeds(text, maxDepth, maxKeys);
  if (found === 'keys')
    return { kind: 'keys', limit: maxKeys, message: `a mapping in the document has more than ${maxKeys} keys; a request needs far fewer, so shorten it` };
  return found === 'depth' ? depthProblem(maxDepth) : null;
}

/** documentBoundsProblem as an error: FERRY_DOCUMENT_TOO_DEEP, or FERRY_PAYLOAD_TOO_LARGE (size, keys). */
export function assertDocumentBounds(text: string, format: DocumentFormat, limits: DocumentLimits = {}): void {
  const problem = documentBoundsProblem(text, format, limits);
  if (problem !== null) throw boundsError(problem);
}

/**
 * Whether a parsed value nests deeper than `maxDepth` (aliases repeat nodes, so this can differ
 * from the text) or has more than MAX_DOCUMENT_NODES values, cycles included. Iterative.
 */
export function valueDepthProblem(value: unknown, maxDepth = MAX_DOCUMENT_DEPTH, maxNodes = MAX_DOCUMENT_NODES): BoundsProblem | null {
  const stack: Array<[unknown, number]> = [[value, 1]];
  let nodes = 0;
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (++nodes > maxNodes)
      return {
        kind: 'size',
        limit: maxNodes,
        message: `the document has more than ${maxNodes} values once its aliases are expanded; write it without repeating anchors`,
      };
    if (v === null || typeof v !== 'object') continue;
    if (depth > maxDepth) return depthProblem(maxDepth);
    const children = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v as object);
    for (const child of children) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return null;
}

/** valueDepthProblem as an error. */
export function assertValueBounds(value: unknown, maxDepth = MAX_DOCUMENT_DEPTH): void {
  const problem = valueDepthProblem(value, maxDepth);
  if (problem !== null) throw boundsError(problem);
}

export function boundsError(problem: BoundsProblem): FerryError {
  return problem.kind === 'depth'
    ? new FerryError('FERRY_DOCUMENT_TOO_DEEP', problem.message, { maxDepth: problem.limit })
    : new FerryError('FERRY_PAYLOAD_TOO_LARGE', problem.message, { limit: problem.limit });
}

function depthProblem(maxDepth: number): BoundsProblem {
  return { kind: 'depth', limit: maxDepth, message: `the document nests deeper than ${maxDepth} levels; flatten it` };
}

/** Brackets outside strings; a stray closer never lowers the count below zero. */
function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return true;
    } else if ((c === 0x5d /* ] */ || c === 0x7d) /* } */ && depth > 0) depth--;
  }
  return false;
}

/**
 * The yaml CST parser's stack counts the document and every collection (flow or block) and
 * scalar being built, so it is at least the nesting the composer recurses through. It is
 * iterative; stop at the first token that makes it deeper than the bound. The mapping being
 * added to is at the top of the stack, or just below the key or value being read.
 */
function yamlExceeds(text: string, maxDepth: number, maxKeys: number): 'depth' | 'keys' | null {
  const parser = new Parser();
  // The stack holds the document on top of the collections (and a key or scalar being read): at
  // least one more than the value's depth; a flow map counts one more still, which errs on the safe side.
  const bound = maxDepth + 1;
  for (const lexeme of new Lexer().lex(text)) {
    for (const _ of parser.next(lexeme)) {
      // tokens of finished documents: nothing to do with them
    }
    const stack = parser.stack;
    if (stack.length > bound) return 'depth';
    for (let i = Math.max(0, stack.length - 3); i < stack.length; i++) {
      const token = stack[i];
      if (token === undefined) continue;
      const isMap = token.type === 'block-map' || (token.type === 'flow-collection' && token.start.source === '{');
      if (isMap && token.items.length > maxKeys) return 'keys';
    }
  }
  for (const _ of parser.end()) {
    // flush
  }
  return null;
}
