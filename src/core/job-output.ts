/**
 * The job's output contract: lines a step prints on stdout that the runner recognises.
 *   ::ferry::checkpoint <text>     the step's latest checkpoint (opaque; `resume` hands it back)
 *   ::ferry::progress <done>/<total>
 * Everything else is log.
 */
export type OutputSignal =
  { readonly kind: 'checkpoint'; readonly text: string } | { readonly kind: 'progress'; readonly done: number; readonly total: number };

/** What starts every line of the output contract; substrates look for it to pass such lines on. */
export const OUTPUT_PREFIX = '::ferry::';
const PROGRESS = /^(\d{1,15})\/(\d{1,15})$/;
/** Checkpoints are stored; a longer one is cut to this many characters. */
export const MAX_CHECKPOINT_LENGTH = 4096;

export function parseOutputLine(line: string): OutputSignal | null {
  if (!line.startsWith(OUTPUT_PREFIX)) return null;
  const rest = line.slice(OUTPUT_PREFIX.length).replace(/\r$/, '');
  const space = rest.indexOf(' ');
  const verb = space === -1 ? rest : rest.slice(0, space);
  const arg = space === -1 ? '' : rest.slice(space + 1);
  if (verb === 'checkpoint') return { kind: 'checkpoint', text: arg.slice(0, MAX_CHECKPOINT_LENGTH) };
  if (verb === 'progress') {
    const m = PROGRESS.exec(arg.trim());
    if (!m) return null;
    return { kind: 'progress', done: Number(m[1]), total: Number(m[2]) };
  }
  return null;
}
