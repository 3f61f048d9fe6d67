/**
 * Where a tenant's data may live. The default folders (`<data-dir>/tenants/<id>`) are Ferry's own
 * choice and always allowed; a folder an admin names must be an absolute, normalised path that
 * overlaps neither Ferry's own state (store, tokens, logs, scratch, snapshots, job folders) nor
 * another tenant's data, since a job writes there and `wipe-and-retry` empties it. On the container
 * substrate `data` is a volume name, which must be a valid name of its own.
 */

export interface TenantDataContext {
  readonly tenantId: string;
  /** The default folder (process) or volume (container) of this tenant. */
  readonly defaultData: string;
  /** Paths that hold Ferry's own state (process substrate); the default folder is allowed inside them. */
  readonly ferryPaths: readonly string[];
  /** Other tenants' data. */
  readonly others: ReadonlyArray<{ readonly id: string; readonly data: string }>;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;

/** A sentence saying what to fix about `data`, or null when it is acceptable. */
export function folderDataProblem(data: string, ctx: TenantDataContext): string | null {
  if (!data.startsWith('/')) return `${JSON.stringify(data)} is not an absolute path; name the folder from / (e.g. /srv/${ctx.tenantId})`;
  const segments = data.slice(1).split('/');
  if (data === '/' || segments.some((s) => s === '' || s === '.' || s === '..')) {
    return `${JSON.stringify(data)} is not a normalised folder path (no empty, "." or ".." parts, no trailing /, not / itself); write it as /srv/${ctx.tenantId}`;
  }
  if (data !== ctx.defaultData) {
    for (const own of ctx.ferryPaths) {
      if (overlaps(data, own)) return `${data} overlaps Ferry's own state (${own}); keep tenant data outside it (or omit data for the default folder)`;
    }
  }
  for (const other of ctx.others) {
    if (other.data.startsWith('/') && overlaps(data, other.data))
      return `${data} overlaps tenant ${other.id}'s data (${other.data}); give each tenant a folder of its own`;
  }
  return null;
}

export function volumeDataProblem(data: string, ctx: TenantDataContext): string | null {
  if (!VOLUME_NAME.test(data)) return `${JSON.stringify(data.slice(0, 80))} is not a volume name (letters, digits, _ . -, starting with a letter or digit)`;
  const other = ctx.others.find((o) => o.data === data);
  if (other) return `volume ${data} is already tenant ${other.id}'s data; give each tenant a volume of its own`;
  return null;
}

/** One path is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  const inside = (x: string, y: string) => x === y || x.startsWith(y.endsWith('/') ? y : `${y}/`);
  return inside(a, b) || inside(b, a);
}
