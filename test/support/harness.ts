/**
 * Test harness: a real Ferry service (real SQLite file or PostgreSQL, real substrate, real HTTP on
 * 127.0.0.1) in a fresh temporary data folder, plus an API client and waiting helpers.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { compileConfig, type RawOptions } from '../../src/config.ts';
import { startService, type FerryService } from '../../src/service.ts';

export interface Ferry {
  readonly url: string;
  readonly token: string;
  readonly dataDir: string;
  readonly service: FerryService;
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T; headers: Headers }>;
  stop(): Promise<void>;
}

export function tempDir(prefix = 'ferry-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A Ferry in `dataDir` (default: a fresh temporary folder). `token`: the admin token to use, for a
 * node that joins a database another node started (only the first node writes <dataDir>/token);
 * default: the one in <dataDir>/token.
 */
export async function startFerry(options: RawOptions & { dataDir?: string; token?: string } = {}): Promise<Ferry> {
  const { token: given, ...raw } = options;
  const dataDir = raw.dataDir ?? tempDir();
  const config = compileConfig({ flags: { port: 0, ...raw, dataDir }, env: {} });
  const quiet = () => undefined;
  const service = await startService(config, quiet);
  const token = given ?? readFileSync(join(dataDir, 'token'), 'utf8').trim();
  return {
    url: service.url,
    token,
    dataDir,
    service,
    api: (method, path, body, headers) => call(service.url, token, method, path, body, headers),
    stop: () => service.stop(),
  };
}

export async function call(url: string, token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const h: Record<string, string> = { ...headers };
  if (token !== null && !('authorization' in h)) h.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    if (typeof body === 'string') payload = body;
    else {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
  }
  const res = await fetch(`${url}${path}`, { method, headers: h, body: payload ?? null });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // text bodies (logs, metrics) stay text
  }
  return { status: res.status, body: parsed as any, headers: res.headers };
}

/**
 * Every migration `GET /v1/migrations?<query>` lists, following its pages (the API answers 100 by
 * default; `X-Ferry-Next-Cursor` names the next page).
 */
export async function listAllMigrations<T = any>(
  api: (method: string, path: string) => Promise<{ status: number; body: unknown; headers: Headers }>,
  query = '',
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams(query);
    q.set('limit', '500');
    if (cursor !== null) q.set('cursor', cursor);
    const res = await api('GET', `/v1/migrations?${q}`);
    if (res.status !== 200) throw new Error(`GET /v1/migrations?${q}: ${res.status} ${JSON.stringify(res.body)}`);
    all.push(...(res.body as T[]));
    cursor = res.headers.get('x-ferry-next-cursor');
  } while (cursor !== null);
  return all;
}

/** Poll `probe` until it returns a truthy value; fails with `what` after `ms`. Never used to time things. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A tokens file (tokensFile option) in `dir` with these tokens; returns its path. */
export function writeTokensFile(
  dir: string,
  tokens: ReadonlyArray<{ name: string; role: string; token?: string; sha256?: string; tenants?: string[] }>,
): string {
  const path = join(dir, 'tokens.yaml');
  writeFileSync(path, toYaml({ tokens }), { mode: 0o600 });
  return path;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A migration request document with sensible defaults. */
export function request(
  tenant: string,
  steps: Array<{ name: string; run: string[]; timeout?: string }>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { issue: 'github:acme/platform#1', tenant, peak: { cpu: '500m', memory: '256Mi' }, steps, ...extra };
}

export const sh = (script: string): string[] => ['sh', '-c', script];
