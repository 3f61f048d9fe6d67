/** A Ferry server as a real child process (`ferry serve`), so tests can kill -9 it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { call, waitFor } from './harness.ts';

const BIN = new URL('../../bin/ferry.js', import.meta.url).pathname;

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T; headers: Headers }>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function spawnServer(
  dataDir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<ServerProcess> {
  rmSync(join(dataDir, 'server-url'), { force: true });
  const child = spawn(process.execPath, [...nodeArgs, BIN, '--data-dir', dataDir, 'serve', '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await waitFor(
    'the server to write its url',
    () => {
      if (child.exitCode !== null) throw new Error(`ferry serve exited ${child.exitCode}: ${stderr}`);
      const p = join(dataDir, 'server-url');
      return existsSync(p) ? readFileSync(p, 'utf8').trim() : null;
    },
    30_000,
  );
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
  await waitFor('healthz', async () => (await call(url, null, 'GET', '/healthz')).status === 200);
  return {
    child,
    url,
    token,
    api: (method, path, body) => call(url, token, method, path, body),
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
