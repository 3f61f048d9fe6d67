/**
 * Scratch folders and snapshots carry their labels in a file next to them, `<ref>.ferry.json`
 * (`{migrationId, issue}`), so `listLabelled` finds them without the store, as the orphan sweep needs.
 */
import { open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const META_SUFFIX = '.ferry.json';

export interface ArtifactMeta {
  readonly migrationId: string;
  readonly issue: string;
}

/** Atomic (temporary file, fsync, rename, fsync of the folder): a crash leaves the old file or the new one, never an empty one. */
export async function writeMeta(ref: string, meta: ArtifactMeta): Promise<void> {
  const final = `${ref}${META_SUFFIX}`;
  const temp = `${ref}${META_SUFFIX}.${process.pid}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify(meta));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, final);
  const dir = await open(dirname(final), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function removeMeta(ref: string): Promise<void> {
  await rm(`${ref}${META_SUFFIX}`, { force: true });
}

async function readMeta(file: string): Promise<ArtifactMeta | null> {
  try {
    const meta = JSON.parse(await readFile(file, 'utf8')) as Partial<ArtifactMeta> | null;
    if (typeof meta?.migrationId !== 'string' || typeof meta.issue !== 'string') return null;
    return { migrationId: meta.migrationId, issue: meta.issue };
  } catch {
    return null;
  }
}

/**
 * The labelled artifacts of one root (scratch or snapshots): every `<ref>.ferry.json` there, with its
 * ref. A damaged metadata file is passed to `skipped` and left out: one such file (a crash mid-write
 * before writes were atomic, a full disk) must not hide every other artifact.
 */
export async function listMeta(root: string, skipped: (file: string) => void): Promise<{ ref: string; meta: ArtifactMeta }[]> {
  const out: { ref: string; meta: ArtifactMeta }[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!name.endsWith(META_SUFFIX)) continue;
    const file = join(root, name);
    const meta = await readMeta(file);
    if (meta === null) {
      skipped(file);
      continue;
    }
    out.push({ ref: join(root, name.slice(0, -META_SUFFIX.length)), meta });
  }
  return out;
}
