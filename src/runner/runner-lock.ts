/**
 * One runner per data folder: a second one would re-attach to the first one's jobs, find their step
 * folders missing or foreign, and hold live jobs as `lost`. A lock file in the data folder names the
 * live owner. (One live process per node name over PostgreSQL is the node's advisory lock, in
 * store/node-session.ts; SQLite lives in the data folder, so this lock covers it.)
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FerryError } from '../core/errors.ts';

export interface RunnerLock {
  release(): Promise<void>;
}

export async function acquireRunnerLock(dataDir: string): Promise<RunnerLock> {
  return fileLock(dataDir);
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

/** /proc/PID/stat field 22, so a reused pid is not taken for the lock's owner. */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}
