/**
 * graphile-worker for the peers case, as a process of its own so that its CPU time is read from
 * /proc the way `ferry serve`'s is: `node --import tsx bench/peers-graphile-worker.ts <database url>`.
 *
 * One task, `stamp`, spawns the peers job (`sh -c 'date +%s%N > FILE'`, FILE from the payload) and
 * succeeds when it exits 0. Concurrency 32 as in issue 14; every other option is graphile-worker's
 * default (LISTEN/NOTIFY for new jobs, 2 s poll as a fallback, pool of 10, its default logger).
 * Tells its parent it is ready over IPC; stops its runner on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { run, type Task } from 'graphile-worker';
import { stampScript } from './peers-support.ts';

const connectionString = process.argv[2];
if (!connectionString) throw new Error('usage: peers-graphile-worker.ts <database url>');

const stamp: Task = (payload) =>
  new Promise<void>((resolve, reject) => {
    const file = (payload as { file: string }).file;
    const child = spawn('sh', ['-c', stampScript(file)], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the job exited ${code}`))));
  });

const runner = await run({ connectionString, concurrency: 32, noHandleSignals: true, taskList: { stamp } });
process.once('SIGTERM', () => {
  void runner.stop().then(() => process.exit(0));
});
process.send?.({ ready: true });
await runner.promise;
