/**
 * One runner per data folder and per database: a second one would re-attach to the first one's
 * jobs, find their step folders missing or foreign, and hold live jobs as `lost`. SQLite: a lock
 * file in the data folder naming the live owner. PostgreSQL: a session advisory lock held on a
 * dedicated connection for the runner's lifetime.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { FerryError } from '../core/errors.ts';

export interface RunnerLock {
  release(): Promise<void>;
}

/** Arbitrary, fixed: the advisory lock key of Ferry's runner. */
const ADVISORY_KEY = 0x46455252; // "FERR"

export async function acquireRunnerLock(dataDir: string, databaseUrl: string | null): Promise<RunnerLock> {
  return databaseUrl ? postgresLock(databaseUrl) : fileLock(dataDir);
}

function fileLock(dataDir: string): RunnerLock {
  const path = join(dataDir, 'lock');
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid} ${processStart(process.pid)}\n`);
      closeSync(fd);
      return {
        async release() {
          try {
            if (readFileSync(path, 'utf8').startsWith(`${process.pid} `)) unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pid = '', start = ''] = readFileSync(path, 'utf8').trim().split(' ');
      if (Number(pid) > 0 && processStart(Number(pid)) === start) {
        throw new FerryError('FERRY_CONFLICT', `another Ferry (pid ${pid}) is running on the data folder ${dataDir}; stop it first, or use another --data-dir`);
      }
      unlinkSync(path); // left by a Ferry that died: take it over
    }
  }
  throw new FerryError('FERRY_CONFLICT', `cannot take the lock ${path}; another Ferry is starting on the same data folder`);
}

async function postgresLock(databaseUrl: string): Promise<RunnerLock> {
  const client = new pg.Client({ connectionString: databaseUrl });
  // If PostgreSQL drops this session the lock is gone; an unhandled 'error' would end the process.
  client.on('error', () => undefined);
  await client.connect();
  const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [ADVISORY_KEY]);
  if (!r.rows[0]?.ok) {
    await client.end();
    throw new FerryError(
      'FERRY_CONFLICT',
      'another Ferry runner is using this PostgreSQL database; one runner per database for now (see README, Substrates and stores)',
    );
  }
  return {
    async release() {
      await client.end().catch(() => undefined); // ending the session releases the lock
    },
  };
}

/** /proc/PID/stat field 22, so a reused pid is not taken for the lock's owner. */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}
