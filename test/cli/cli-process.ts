/** Runs the real `ferry` command (bin/ferry.js) as a child process, with no FERRY_* variables. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of this process without FERRY_* (and CI-independent), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FERRY_')) env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

/**
 * Run `ferry <args>` in `cwd` (a folder with no .ferry of its own). Asynchronous on purpose: the
 * service under test runs in this process and must keep answering while the CLI waits for it.
 */
export function runCli(args: readonly string[], opts: { cwd: string; env?: Record<string, string>; stdin?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Exit code `code`, and a stderr free of stack traces and source paths. */
export function assertExit(r: CliResult, code: number): void {
  const show = `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  assert.equal(r.code, code, show);
  assertNoStack(r.stderr);
  assertNoStack(r.stdout);
}

export function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /^\s+at .+[(:]/m, `no stack trace:\n${text}`);
  assert.doesNotMatch(text, /\.ts:\d+|node_modules|\/src\//, `no source paths:\n${text}`);
}

/** A local port nothing listens on (bound, then released), for "cannot reach" cases. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
