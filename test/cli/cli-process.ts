/** Runs the real `ferry` command (bin/ferry.js) as a child process, with no FERRY_* variables. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
 * Node code loaded before the CLI (`--import`) that logs every TCP connection the CLI attempts to
 * `logFile`, one JSON line each, and stops any to a host other than 127.x/::1/localhost before a
 * packet leaves: tests of "never sends off this host" can then assert that nothing was attempted,
 * and cannot send anything elsewhere even against a CLI that would.
 */
export function connectGuard(logFile: string): string {
  const code = `
    import net from 'node:net';
    import { appendFileSync } from 'node:fs';
    const loopback = (h) => h === 'localhost' || /^127\\./.test(h) || h === '::1' || h === '[::1]';
    const connect = net.Socket.prototype.connect;
    net.Socket.prototype.connect = function (...args) {
      let o = Array.isArray(args[0]) ? args[0][0] : args[0];
      if (typeof o !== 'object' || o === null) o = { port: o, host: typeof args[1] === 'string' ? args[1] : undefined };
      // A Unix socket has a path and no port; http's options carry the request path too, and a port.
      if (o.port != null || o.host != null) {
        const host = o.host ?? 'localhost';
        appendFileSync(${JSON.stringify(logFile)}, JSON.stringify({ host, port: o.port }) + '\\n');
        if (!loopback(host)) {
          const err = Object.assign(new Error('connection off this host blocked by the test'), { code: 'EHOSTUNREACH' });
          process.nextTick(() => this.destroy(err));
          return this;
        }
      }
      return connect.apply(this, args);
    };`;
  return `data:text/javascript,${encodeURIComponent(code)}`;
}

/**
 * Run `ferry <args>` in `cwd` (a folder with no .ferry of its own). Asynchronous on purpose: the
 * service under test runs in this process and must keep answering while the CLI waits for it.
 * `guard`: a file for connectGuard. `killAfterMs` (default 60 s): a CLI still running then is
 * killed (the result then has `signal` set), so that a CLI that hangs fails the test instead of hanging it.
 */
export function runCli(
  args: readonly string[],
  opts: { cwd: string; env?: Record<string, string>; stdin?: string; guard?: string; killAfterMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const pre = opts.guard ? ['--import', connectGuard(opts.guard)] : [];
    const child = spawn(process.execPath, [...pre, BIN, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 60_000);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
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

/** The connections a CLI run under connectGuard(`logFile`) attempted. */
export function attemptedConnections(logFile: string): Array<{ host: string; port: number }> {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { host: string; port: number });
}

/** A local port nothing listens on (bound, then released), for "cannot reach" cases. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
