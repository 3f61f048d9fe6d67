/**
 * A store with a long history, made quickly for the `history` benchmark: finished migrations with
 * the attempts, events and artifacts rows Ferry itself writes for them (the shapes were copied from
 * a real run), inserted straight into a SQLite store whose schema Ferry's own schema migrations made.
 *
 * The mix, by a fixed pseudo-random sequence (the same store every time):
 * - 80 % succeeded at the first attempt (file, approve, gate-pass, start, succeed);
 * - 6 % failed once, were resumed by an operator and then succeeded (two attempts);
 * - 4 % failed and were abandoned or accepted as partial;
 * - 5 % were rejected by the gate at approval; 5 % were cancelled before they ran.
 * Steps 1–3 each, a job artifact per step run, a log and scratch per attempt, a snapshot on half of
 * the first attempts. About five migrations per issue; 90 % of the issues are closed and torn down
 * (artifacts `removed`), the rest still open (artifacts `created`, kept until the issue closes).
 *
 * Inserting through the Store's own methods would take one write transaction per row (minutes for
 * 100,000 migrations); one transaction of prepared inserts takes seconds. Nothing here is Ferry's
 * product code: it writes the rows, and Ferry reads them as its own.
 */
import SQLite from 'better-sqlite3';
import { openSqliteStore } from '../src/store/open-store.ts';

export interface HistoryShape {
  /** Finished migrations to write. */
  readonly migrations: number;
  /** Tenants the history is spread over, round robin (they need not be registered: migrations name them). */
  readonly tenants: readonly string[];
  /** The node name the rows carry (the server's, so that it adopts nothing at start). */
  readonly node: string;
  /** Ferry's data folder, for the refs of logs, scratch, snapshots and jobs. */
  readonly dataDir: string;
  /** The newest migration of the history was filed this long before now. Default 1 hour. */
  readonly endsAgoMs?: number;
}

export interface SeededCounts {
  readonly migrations: number;
  readonly attempts: number;
  readonly events: number;
  readonly artifacts: number;
  readonly issues: number;
}

const DAY_MS = 86_400_000;

/** A small, fast, seeded generator (mulberry32): the same history on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Outcome = 'succeeded' | 'resumed' | 'abandoned' | 'accepted-partial' | 'rejected' | 'cancelled';

function outcomeOf(r: number): Outcome {
  if (r < 0.8) return 'succeeded';
  if (r < 0.86) return 'resumed';
  if (r < 0.88) return 'abandoned';
  if (r < 0.9) return 'accepted-partial';
  if (r < 0.95) return 'rejected';
  return 'cancelled';
}

/** Create the store at `path` (schema by Ferry's migrations) and write the history into it in one transaction. */
export async function seedHistory(path: string, shape: HistoryShape): Promise<SeededCounts> {
  const store = await openSqliteStore(path);
  await store.close();
  const db = new SQLite(path);
  try {
    // Setup, not Ferry: the file is durable once closed, and a crash here only means seeding again.
    db.pragma('synchronous = OFF');
    return write(db, shape);
  } finally {
    db.close();
  }
}

function write(db: SQLite.Database, shape: HistoryShape): SeededCounts {
  const next = random(11);
  const { node, dataDir } = shape;
  const insertMigration = db.prepare(
    `INSERT INTO migrations (id, issue, tenant, state, request, peak, attempts, verdict, filed_by, failed_step, held_cause, held_detail,
       checkpoint, checkpoint_step, limits_enforced, isolated, snapshot_ref, snapshot_at, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertAttempt = db.prepare(
    `INSERT INTO attempts (migration_id, number, from_step, step, job_ref, log_ref, started_at, ended_at, exit_code, signal, cause, detail, node)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)`,
  );
  const insertEvent = db.prepare('INSERT INTO events (migration_id, at, actor, kind, from_state, to_state, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const insertArtifact = db.prepare(
    'INSERT INTO artifacts (migration_id, issue, kind, ref, state, recorded_at, created_at, removed_at, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insertIssue = db.prepare('INSERT INTO issues (ref, closed_at, closed_by, teardown_done_at) VALUES (?, ?, ?, ?)');
  const counts = { migrations: 0, attempts: 0, events: 0, artifacts: 0, issues: 0 };
  const n = shape.migrations;
  const end = Date.now() - (shape.endsAgoMs ?? 3_600_000);
  const start = end - 365 * DAY_MS;
  const perIssue = 5;

  db.transaction(() => {
    let issue = '';
    let issueOpen = false;
    for (let i = 0; i < n; i++) {
      const filedMs = Math.round(start + ((end - start) * i) / n);
      if (i % perIssue === 0) {
        issue = `github:acme/platform#${100_000 + i / perIssue}`;
        issueOpen = next() < 0.1;
        // Closed once its last migration ended (the issue's five span a few hours at this rate).
        const closedAt = iso(Math.round(start + ((end - start) * (i + perIssue)) / n) + 60_000);
        insertIssue.run(issue, issueOpen ? null : closedAt, issueOpen ? null : 'alice', issueOpen ? null : closedAt);
        counts.issues++;
      }
      const tenant = shape.tenants[i % shape.tenants.length] as string;
      const id = `m-${filedMs.toString(36)}-${Math.floor(next() * 2 ** 32)
        .toString(16)
        .padStart(8, '0')}`;
      const stepCount = 1 + Math.floor(next() * 3);
      const outcome = outcomeOf(next());
      const peak = { cpu: 500 * (1 + Math.floor(next() * 4)), memory: 268_435_456 * (1 + Math.floor(next() * 4)) };
      const request = {
        issue,
        tenant,
        peak,
        steps: Array.from({ length: stepCount }, (_, s) => ({
          name: `step-${s + 1}`,
          run: ['sh', '-c', `./migrate --part ${s + 1} --from "\${FERRY_CHECKPOINT:-0}"`],
        })),
        snapshot: 'auto',
        env: { SOURCE: `old-${tenant}` },
      };
      const verdict = (atMs: number) =>
        JSON.stringify({
          ok: outcome !== 'rejected',
          tenant,
          steadyState: { cpu: 1000, memory: 1_073_741_824 },
          capacity: { cpu: 4_000_000, memory: 4_398_046_511_104 },
          dimensions: Object.entries(peak).map(([dimension, v]) => ({
            dimension,
            peak: v,
            steadyState: dimension === 'cpu' ? 1000 : 1_073_741_824,
            cap: dimension === 'cpu' ? 2000 : 2_147_483_648,
            capacity: dimension === 'cpu' ? 4_000_000 : 4_398_046_511_104,
            ok: true,
          })),
          reasons: [],
          at: iso(atMs),
        });
      let t = filedMs;
      // Rows that reference the migration go in after it (foreign keys), once its final state is known.
      const rows: Array<() => void> = [];
      const event = (actor: string, kind: string, from: string | null, to: string | null, reason: string | null, detail: string | null) => {
        const at = iso(t);
        rows.push(() => insertEvent.run(id, at, actor, kind, from, to, reason, detail));
        counts.events++;
      };
      const artifactState = issueOpen ? 'created' : 'removed';
      const closedMs = end + 60_000;
      const artifact = (kind: string, ref: string, at: number) => {
        const removedAt = issueOpen ? null : iso(Math.min(closedMs, at + 7_200_000));
        rows.push(() => insertArtifact.run(id, issue, kind, ref, artifactState, iso(at), iso(at + 40), removedAt, node));
        counts.artifacts++;
      };
      event('alice', 'file', null, 'filed', null, JSON.stringify({ verdict: JSON.parse(verdict(t)) }));
      t += 60_000 + Math.floor(next() * 600_000);
      const attempts: Array<{ from: number; failAt: number | null; endMs: number; startMs: number }> = [];
      let state: string;
      if (outcome === 'cancelled') {
        event('bob', 'cancel', 'filed', 'cancelled', 'replaced by a corrected request', null);
        state = 'cancelled';
      } else {
        event('bob', 'approve', 'filed', 'approved', null, null);
        if (outcome === 'rejected') {
          event(
            'ferry',
            'reject',
            'approved',
            'rejected',
            `memory peak exceeds 2 x steady-state of tenant ${tenant}`,
            JSON.stringify({ verdict: JSON.parse(verdict(t)) }),
          );
          state = 'rejected';
        } else {
          event('ferry', 'gate-pass', 'approved', 'queued', null, JSON.stringify({ verdict: JSON.parse(verdict(t)) }));
          const fails = outcome !== 'succeeded';
          const failAt = Math.floor(next() * stepCount);
          t += 5;
          attempts.push({ from: 0, failAt: fails ? failAt : null, startMs: t, endMs: t + 1000 * (1 + failAt) });
          event('ferry', 'start', 'queued', 'running', 'attempt 1 from step 1', JSON.stringify({ verdict: JSON.parse(verdict(t)) }));
          t += 1000 * (1 + (fails ? failAt : stepCount));
          if (!fails) {
            event('ferry', 'succeed', 'running', 'succeeded', 'attempt 1: all steps succeeded', null);
            state = 'succeeded';
          } else {
            event(
              'ferry',
              'fail',
              'running',
              'held',
              `attempt 1: step ${failAt + 1} exited with 3`,
              JSON.stringify({ cause: 'exit-code', step: failAt, exitCode: 3 }),
            );
            t += 3_600_000;
            if (outcome === 'resumed') {
              event('carol', 'resume', 'held', 'queued', 'fixed the source row and resumed', JSON.stringify({ fromStep: failAt }));
              t += 5;
              attempts.push({ from: failAt, failAt: null, startMs: t, endMs: t + 1000 * (stepCount - failAt) });
              event('ferry', 'start', 'queued', 'running', `attempt 2 from step ${failAt + 1}`, JSON.stringify({ verdict: JSON.parse(verdict(t)) }));
              t += 1000 * (stepCount - failAt);
              event('ferry', 'succeed', 'running', 'succeeded', 'attempt 2: all steps succeeded', null);
              state = 'succeeded';
            } else {
              event('carol', outcome === 'abandoned' ? 'abandon' : 'accept-partial', 'held', outcome, 'not worth another attempt', null);
              state = outcome;
            }
          }
        }
      }
      let snapshot: string | null = null;
      attempts.forEach((a, k) => {
        const number = k + 1;
        const lastStep = a.failAt ?? stepCount - 1;
        const logRef = `${dataDir}/logs/${id}/attempt-${number}.log`;
        const jobRef = (s: number) => `${dataDir}/jobs/${id}/a${number}-s${s}`;
        const values = [
          id,
          number,
          a.from,
          lastStep,
          jobRef(lastStep),
          logRef,
          iso(a.startMs),
          iso(a.endMs),
          a.failAt === null ? 0 : 3,
          a.failAt === null ? null : 'exit-code',
          a.failAt === null ? 'all steps succeeded' : `step ${lastStep + 1} exited with 3`,
          node,
        ];
        rows.push(() => insertAttempt.run(...values));
        counts.attempts++;
        artifact('log', logRef, a.startMs);
        if (number === 1) {
          artifact('scratch', `${dataDir}/scratch/${id}`, a.startMs);
          if (next() < 0.5) {
            snapshot = `${dataDir}/snapshots/${id}`;
            artifact('snapshot', snapshot, a.startMs);
          }
        }
        for (let s = a.from; s <= lastStep; s++) artifact('job', jobRef(s), a.startMs + 1000 * (s - a.from));
      });
      const failed = attempts.find((a) => a.failAt !== null);
      insertMigration.run(
        id,
        issue,
        tenant,
        state,
        JSON.stringify(request),
        JSON.stringify(peak),
        attempts.length,
        verdict(filedMs),
        'alice',
        failed && state !== 'succeeded' ? failed.failAt : null,
        failed && state !== 'succeeded' ? 'exit-code' : null,
        failed && state !== 'succeeded' ? `step ${(failed.failAt ?? 0) + 1} exited with 3` : null,
        failed ? `row ${Math.floor(next() * 1e6)}` : null,
        failed ? failed.failAt : null,
        attempts.length ? 1 : null,
        attempts.length ? 1 : null,
        snapshot,
        snapshot ? iso(filedMs + 60_000) : null,
        iso(filedMs),
        iso(t),
      );
      counts.migrations++;
      for (const row of rows) row();
    }
  })();
  return counts;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
