/** Reading the Engine API's HTTP errors as dockerode reports them (`statusCode` on the error). */

function engineStatus(err: unknown): number | null {
  if (typeof err === 'object' && err !== null && 'statusCode' in err) {
    const code = (err as { statusCode: unknown }).statusCode;
    return typeof code === 'number' ? code : null;
  }
  return null;
}

export function isNotFound(err: unknown): boolean {
  return engineStatus(err) === 404;
}

/** 304: "container already stopped / started". */
export function isNotModified(err: unknown): boolean {
  return engineStatus(err) === 304;
}

export function engineMessage(err: unknown): string {
  if (err instanceof Error) {
    const json = (err as { json?: { message?: unknown; cause?: unknown } }).json;
    if (json && typeof json.message === 'string') return json.message.trim();
    return err.message;
  }
  return String(err);
}

/** 409: a name already in use, a volume still in use. */
export function isConflict(err: unknown): boolean {
  return engineStatus(err) === 409;
}
