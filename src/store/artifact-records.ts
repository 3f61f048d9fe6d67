/**
 * Artifacts (logs, scratch folders, snapshots, jobs): recorded as intended before they are created,
 * marked created, then removed, so a crash at any point leaves a record teardown can act on.
 * Reached through the Store.
 */
import type { Kysely, Selectable } from 'kysely';
import type { SqlDialect } from './dialect.ts';
import type { ArtifactRecord, ArtifactState } from './records.ts';
import { artifactRecord, patchColumns, type MigrationPatch } from './row-records.ts';
import type { ArtifactsTable, Database, Db } from './schema.ts';

/** An artifact about to be created, and what it belongs to. */
export interface ArtifactIntent {
  readonly migrationId: string;
  readonly issue: string;
  readonly kind: string;
  readonly ref: string;
  /** The node it will live on. */
  readonly node: string | null;
}

export interface ArtifactFilter {
  migrationId?: string;
  issue?: string;
  /** Only artifacts not removed yet (intended or created). */
  present?: boolean;
  /** Only those on this node (and those recorded before nodes existed, which every node may remove). */
  node?: string;
}

export class ArtifactRecords {
  private readonly db: Kysely<Database>;
  private readonly dialect: SqlDialect;

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.db = db;
    this.dialect = dialect;
  }

  async mark(id: number, state: Exclude<ArtifactState, 'intended'>, now: Date): Promise<void> {
    const at = now.toISOString();
    await this.db
      .updateTable('artifacts')
      .set(state === 'created' ? { state, created_at: at } : { state, removed_at: at })
      .where('id', '=', id)
      .execute();
  }

  /** Mark artifacts created (and optionally change the migration, e.g. its snapshot), in one transaction. */
  async markCreated(ids: readonly number[], now: Date, migration?: { id: string; patch: MigrationPatch }): Promise<void> {
    if (ids.length === 0 && !migration) return;
    const at = now.toISOString();
    const created = (db: Db) =>
      db
        .updateTable('artifacts')
        .set({ state: 'created', created_at: at })
        .where('id', 'in', [...ids])
        .where('state', '=', 'intended')
        .execute();
    // One statement needs no transaction of its own on PostgreSQL (on SQLite a transaction joins the group commit).
    if (!migration && this.dialect === 'postgres') {
      await created(this.db);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      if (ids.length) await created(trx);
      if (migration)
        await trx
          .updateTable('migrations')
          .set({ ...patchColumns(migration.patch), updated_at: at })
          .where('id', '=', migration.id)
          .execute();
    });
  }

  async list(filter: ArtifactFilter): Promise<ArtifactRecord[]> {
    let q = this.db.selectFrom('artifacts').selectAll();
    if (filter.migrationId !== undefined) q = q.where('migration_id', '=', filter.migrationId);
    if (filter.issue !== undefined) q = q.where('issue', '=', filter.issue);
    if (filter.present) q = q.where('state', '!=', 'removed');
    const node = filter.node;
    if (node !== undefined) q = q.where((eb) => eb.or([eb('node', '=', node), eb('node', 'is', null)]));
    const rows = await q.orderBy('id').execute();
    return rows.map(artifactRecord);
  }
}

/** Record an artifact's intent; idempotent per (kind, ref): the existing record is returned. */
export async function recordArtifactIn(db: Db, a: ArtifactIntent, now: Date): Promise<ArtifactRecord> {
  return (await recordArtifactsIn(db, [a], now))[0]!;
}

/**
 * Record the intents of several artifacts in one statement, each idempotent per (kind, ref): an
 * existing record is returned as it is (read only when there is one). In the order given.
 */
export async function recordArtifactsIn(db: Db, intents: readonly ArtifactIntent[], now: Date): Promise<ArtifactRecord[]> {
  if (intents.length === 0) return [];
  const unique = [...new Map(intents.map((a) => [artifactKey(a), a])).values()];
  const recordedAt = now.toISOString();
  const rows = await db
    .insertInto('artifacts')
    .values(
      unique.map((a) => ({
        migration_id: a.migrationId,
        issue: a.issue,
        kind: a.kind,
        ref: a.ref,
        state: 'intended',
        recorded_at: recordedAt,
        created_at: null,
        removed_at: null,
        node: a.node,
      })),
    )
    .onConflict((oc) => oc.columns(['kind', 'ref']).doNothing())
    .returningAll()
    .execute();
  return artifactsInOrder(db, intents, rows);
}

/**
 * The records of `intents`, in their order, from the rows an INSERT … ON CONFLICT DO NOTHING
 * returned; the artifacts that were recorded already (the conflicts) are read.
 */
export async function artifactsInOrder(
  db: Db,
  intents: ReadonlyArray<{ kind: string; ref: string }>,
  inserted: ReadonlyArray<Selectable<ArtifactsTable>>,
): Promise<ArtifactRecord[]> {
  const byKey = new Map(inserted.map((r) => [artifactKey(r), r]));
  const existing = intents.filter((a) => !byKey.has(artifactKey(a)));
  if (existing.length > 0) {
    const found = await db
      .selectFrom('artifacts')
      .selectAll()
      .where((eb) => eb.or(existing.map((a) => eb.and([eb('kind', '=', a.kind), eb('ref', '=', a.ref)]))))
      .execute();
    for (const r of found) byKey.set(artifactKey(r), r);
  }
  return intents.map((a) => artifactRecord(byKey.get(artifactKey(a))!));
}

/** An artifact's identity, (kind, ref), as one string. */
export function artifactKey(a: { kind: string; ref: string }): string {
  return `${a.kind}\u0000${a.ref}`;
}
