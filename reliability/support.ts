/**
 * Helpers of the reliability suite: read the store's SQLite file from outside the server
 * (read-only), find supervisors that belong to a data folder, and clean up after a test.
 */
import Database from 'better-sqlite3';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every row of every table, in rowid order: two equal snapshots mean an unchanged store. */
export function storeRows(dataDir: string): Record<string, unknown[]> {
  const db = new Database(join(dataDir, 'ferry.db'), { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{
      name: string;
    }>;
    const out: Record<string, unknown[]> = {};
    for (const { name } of tables) out[name] = db.prepare(`SELECT * FROM "${name.replaceAll('"', '""')}" ORDER BY rowid`).all();
    // A live node renews its lease all the time: when it was last seen is not a change anyone made.
    out.nodes = (out.nodes ?? []).map((row) => ({ ...(row as Record<string, unknown>), last_seen_ms: '(renewed)' }));
    return out;
  } finally {
    db.close();
  }
}

/** PRAGMA integrity_check of the store, opened read-only beside (or after) the server. */
export function integrityCheck(dataDir: string): string {
  const db = new Database(join(dataDir, 'ferry.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

/** Run a read-only query against the store. */
export function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(dataDir, 'ferry.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Tenants with more than one holder; the store's index forbids it, this checks from outside. */
export function doubleHolders(dataDir: string): Array<{ tenant: string; n: number }> {
  return query(
    dataDir,
    "SELECT tenant, COUNT(*) AS n FROM migrations WHERE state IN ('running', 'held') OR (state = 'queued' AND attempts > 0) GROUP BY tenant HAVING COUNT(*) > 1",
  );
}

/** Supervisor processes working for this data folder. */
export function supervisorsOf(dataDir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('ferry-supervise') && cmd.includes(dataDir)) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

/** Stop what a test left running (SIGUSR1 first: a supervisor's cancel stops its job's group). */
export async function stopSupervisors(dataDir: string): Promise<number> {
  let found = 0;
  for (let i = 0; i < 100; i++) {
    const left = supervisorsOf(dataDir);
    if (i === 0) found = left.length;
    if (left.length === 0) break;
    for (const pid of left) {
      try {
        process.kill(pid, i < 60 ? 'SIGUSR1' : 'SIGKILL');
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return found;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
