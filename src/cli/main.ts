/**
 * The `ferry` command: `serve` runs the service (serve-command.ts); every other command, here, wraps
 * the HTTP API.
 * Exit codes: 0 ok, 2 usage (bad flags or a bad document, a malformed token, a token the CLI will
 * not send where --url points), 3 rejected by the admission rule, 4 wrong state, 1 anything else
 * (the server unreachable or not answering in time included).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { clientSettings } from '../config.ts';
import { parseDuration } from '../core/duration.ts';
import { FerryError } from '../core/errors.ts';
import { formatQuantity } from '../core/quantity.ts';
import type { Verdict } from '../core/types.ts';
import { ApiError, FerryClient } from './client.ts';
import { table, verdictTable } from './format.ts';
import { registerServeCommand } from './serve-command.ts';
import { checkToken, parseServerUrl, redact, tokenPolicy } from './token-policy.ts';

export const EXIT = { ok: 0, failure: 1, usage: 2, rejected: 3, wrongState: 4 } as const;

interface GlobalFlags {
  url?: string;
  token?: string;
  dataDir?: string;
  timeout?: string;
  json?: boolean;
}

/** Default for --timeout: connect and whole request (a log follower: time without output and without an answer to a health check). */
const DEFAULT_TIMEOUT_MS = 30_000;

/** The token in use, so that no message printed on the way out can show it. */
let tokenInUse: string | null = null;

const program = new Command('ferry')
  .description('Ferry: the one-shot migration job runner')
  .option('--url <url>', 'Ferry server (default: FERRY_URL, or the embedded server in the data folder)')
  .option('--token <token>', 'API token (default: FERRY_TOKEN, or <data-dir>/token)')
  .option('--data-dir <dir>', 'embedded data folder (default: FERRY_DATA_DIR or ./.ferry)')
  .option(
    '--timeout <duration>',
    'most time to connect and get an answer, like 30s or 500ms; logs --follow fails only when the server stops answering (default: FERRY_TIMEOUT or 30s)',
  )
  .option('--json', 'print JSON for scripts')
  .exitOverride()
  .showHelpAfterError();

function client(): { api: FerryClient; flags: GlobalFlags } {
  const flags = program.opts<GlobalFlags>();
  const settings = clientSettings({
    ...(flags.url ? { url: flags.url } : {}),
    ...(flags.token ? { token: flags.token } : {}),
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    ...(flags.timeout ? { timeout: flags.timeout } : {}),
  });
  tokenInUse = settings.token || null;
  const tokenSource = settings.token ? settings.tokenSource : null;
  if (settings.token && tokenSource) checkToken(settings.token, tokenSource);
  const url = parseServerUrl(settings.url, settings.urlSource);
  const timeout = timeoutMs(settings.timeout);
  // Decided before any connection: a refusal throws here, so nothing is sent anywhere.
  const warning = tokenPolicy(url, settings.urlSource, tokenSource);
  if (warning) process.stderr.write(`ferry: ${warning}\n`);
  return { api: new FerryClient({ url: settings.url, token: settings.token || null, timeoutMs: timeout }), flags };
}

function timeoutMs(raw: string | null): number {
  if (raw === null) return DEFAULT_TIMEOUT_MS;
  // parseDuration reads a bare number as seconds only when it is a number, not text.
  const ms = parseDuration('--timeout (or FERRY_TIMEOUT)', /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw);
  // Node's timers hold at most 2^31-1 ms (24.8 days); a longer one would fire at once.
  return Math.min(ms, 2 ** 31 - 1);
}

function print(flags: GlobalFlags, value: unknown, human: () => string): void {
  process.stdout.write(`${flags.json ? JSON.stringify(value, null, 2) : human()}\n`);
}

/** A request document is small; a larger file is refused before it is read whole (the server takes 1 MiB by default). */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

function readDocument(file: string): { yaml?: string; json?: unknown } {
  let text: string;
  try {
    const fd = file === '-' ? 0 : openSync(file, 'r');
    try {
      const buf = Buffer.alloc(MAX_DOCUMENT_BYTES + 1);
      let used = 0;
      for (let n = 1; n > 0 && used < buf.length; used += n) n = readSync(fd, buf, used, buf.length - used, null);
      if (used > MAX_DOCUMENT_BYTES) throw new Error(`it is larger than ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB, which no request document is`);
      text = buf.subarray(0, used).toString('utf8');
    } finally {
      if (fd !== 0) closeSync(fd);
    }
  } catch (err) {
    throw new FerryError('FERRY_INVALID_REQUEST', `cannot read ${file}: ${(err as Error).message}`);
  }
  return file.endsWith('.json') ? { json: safeJson(text, file) } : { yaml: text };
}

function safeJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FerryError('FERRY_INVALID_REQUEST', `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

type MigrationView = {
  id: string;
  issue: string;
  tenant: string;
  state: string;
  attempts: number | unknown[];
  heldCause?: string | null;
  heldDetail?: string | null;
  progress?: { done: number; total: number } | null;
  checkpoint?: { step: number; text: string } | null;
  limitsEnforced?: boolean | null;
  isolated?: boolean | null;
  actions?: Record<string, string> | null;
  events?: Array<{ at: string; actor: string; kind: string; from: string | null; to: string | null; reason: string | null }>;
  artifacts?: Array<{ kind: string; ref: string; state: string }>;
  updatedAt: string;
};

registerServeCommand(program);

const tenant = program.command('tenant').description('register and list tenants');
tenant
  .command('put <id>')
  .description('register a tenant or change its steady-state (admin)')
  .requiredOption('--cpu <quantity>', 'steady-state cpu, e.g. 500m')
  .requiredOption('--memory <quantity>', 'steady-state memory, e.g. 1Gi')
  .option('--data <location>', 'tenant data: folder (process) or volume (container)')
  .action(async (id: string, opts: { cpu: string; memory: string; data?: string }) => {
    const { api, flags } = client();
    const t = await api.request<{ id: string; steadyState: Record<string, number>; data: string }>('PUT', `/v1/tenants/${encodeURIComponent(id)}`, {
      json: { steadyState: { cpu: opts.cpu, memory: opts.memory }, ...(opts.data ? { data: opts.data } : {}) },
    });
    print(flags, t, () => `tenant ${t.id}: steady-state ${describeResources(t.steadyState)}, data ${t.data}`);
  });
tenant
  .command('ls')
  .description('list tenants')
  .action(async () => {
    const { api, flags } = client();
    const list = await api.requestAllPages<{ id: string; steadyState: Record<string, number>; data: string }>('/v1/tenants');
    print(flags, list, () =>
      table(
        ['TENANT', 'STEADY-STATE', 'DATA'],
        list.map((t) => [t.id, describeResources(t.steadyState), t.data]),
      ),
    );
  });

type NodeView = {
  name: string;
  state: string;
  url: string | null;
  substrate: string;
  capacity: Record<string, number>;
  running: { migrations: string[]; peaks: Record<string, number> };
  lastSeenAt: string;
  lostAt: string | null;
};

program
  .command('nodes')
  .description("list the cluster's nodes: state, substrate, capacity, what runs on each, when each was last seen")
  .action(async () => {
    const { api, flags } = client();
    const r = await api.request<{ nodes: NodeView[]; scoped?: boolean }>('GET', '/v1/nodes');
    print(flags, r, () => {
      const out = table(
        ['NAME', 'STATE', 'SUBSTRATE', 'CAPACITY', 'RUNNING', 'LAST-SEEN', 'URL'],
        r.nodes.map((n) => [
          n.name,
          n.state === 'lost' && n.lostAt ? `lost since ${n.lostAt}` : n.state,
          n.substrate,
          describeResources(n.capacity) || '-',
          n.running.migrations.length === 0 ? '-' : `${n.running.migrations.length}: ${describeResources(n.running.peaks)}`,
          n.lastSeenAt,
          n.url ?? '-',
        ]),
      );
      return r.scoped ? `${out}\n\nrunning: your tenants' migrations only` : out;
    });
  });

program
  .command('check <file>')
  .description('check a request document against the admission rule; changes nothing (exit 3 when rejected)')
  .action(async (file: string) => {
    const { api, flags } = client();
    const r = await api.request<{ ok: boolean; verdict: Verdict }>('POST', '/v1/migrations/check', readDocument(file));
    print(flags, r, () => `${verdictTable(r.verdict)}\n\nadmitted: the peak is within 2x the tenant's steady-state`);
  });

program
  .command('file <file>')
  .description('file a migration request (exit 3 when rejected)')
  .action(async (file: string) => {
    const { api, flags } = client();
    const m = await api.request<MigrationView & { verdict: Verdict }>('POST', '/v1/migrations', readDocument(file));
    print(flags, m, () => `${verdictTable(m.verdict)}\n\nfiled ${m.id} (${m.state}) on ${m.issue}; approve it with: ferry approve ${m.id}`);
  });

program
  .command('approve <id>')
  .description('approve a filed migration; the admission gate runs again (operator)')
  .action(async (id: string) => {
    const { api, flags } = client();
    const m = await api.request<MigrationView>('POST', `/v1/migrations/${encodeURIComponent(id)}/approve`, { json: {} });
    print(flags, m, () => `${m.id} approved and ${m.state}`);
  });

program
  .command('ls')
  .description('list migrations')
  .option('--tenant <id>')
  .option('--state <states>', 'comma-separated states')
  .option('--issue <ref>')
  .option('--page-size <n>', 'migrations asked for per request (all pages are listed)', '500')
  .action(async (opts: { tenant?: string; state?: string; issue?: string; pageSize: string }) => {
    const { api, flags } = client();
    if (!/^[1-9]\d{0,2}$/.test(opts.pageSize) || Number(opts.pageSize) > 500)
      throw new FerryError('FERRY_INVALID_REQUEST', '--page-size is a whole number from 1 to 500');
    const q = new URLSearchParams();
    if (opts.tenant) q.set('tenant', opts.tenant);
    if (opts.state) q.set('state', opts.state);
    if (opts.issue) q.set('issue', opts.issue);
    // The API answers a page at a time; follow its cursor to list them all.
    const list = await api.requestAllPages<MigrationView>('/v1/migrations', q, Number(opts.pageSize));
    print(flags, list, () =>
      table(
        ['ID', 'TENANT', 'STATE', 'ATTEMPTS', 'ISSUE', 'UPDATED'],
        list.map((m) => [m.id, m.tenant, m.state + (m.heldCause ? ` (${m.heldCause})` : ''), String(m.attempts), m.issue, m.updatedAt]),
      ),
    );
  });

program
  .command('show <id>')
  .description('show a migration: state, attempts, events, artifacts, and what each action would do')
  .action(async (id: string) => {
    const { api, flags } = client();
    const m = await api.request<MigrationView>('GET', `/v1/migrations/${encodeURIComponent(id)}`);
    print(flags, m, () => {
      const lines = [`${m.id}  ${m.state}  tenant ${m.tenant}  issue ${m.issue}`];
      if (m.heldDetail) lines.push(`held: ${m.heldCause} — ${m.heldDetail}`);
      if (m.progress) lines.push(`progress: ${m.progress.done}/${m.progress.total}`);
      if (m.checkpoint) lines.push(`checkpoint (step ${m.checkpoint.step + 1}): ${m.checkpoint.text}`);
      if (m.limitsEnforced === false) lines.push('limits: NOT enforced on this substrate');
      if (m.isolated === false) lines.push("isolation: NOT confined (the job ran as Ferry's user, seeing what Ferry sees)");
      if (m.actions) lines.push('', 'actions:', ...Object.entries(m.actions).map(([a, d]) => `  ${a.padEnd(15)} ${d}`));
      if (m.events?.length)
        lines.push(
          '',
          table(
            ['AT', 'ACTOR', 'EVENT', 'FROM', 'TO', 'REASON'],
            m.events.map((e) => [e.at, e.actor, e.kind, e.from ?? '', e.to ?? '', e.reason ?? '']),
          ),
        );
      if (m.artifacts?.length)
        lines.push(
          '',
          table(
            ['ARTIFACT', 'STATE', 'REF'],
            m.artifacts.map((a) => [a.kind, a.state, a.ref]),
          ),
        );
      return lines.join('\n');
    });
  });

program
  .command('logs <id>')
  .description("print an attempt's log (default: the latest)")
  .option('--attempt <n>')
  .option('-f, --follow', 'keep printing until the attempt ends')
  .action(async (id: string, opts: { attempt?: string; follow?: boolean }) => {
    const { api } = client();
    const q = new URLSearchParams();
    if (opts.attempt) q.set('attempt', opts.attempt);
    if (opts.follow) q.set('follow', 'true');
    await api.stream('GET', `/v1/migrations/${encodeURIComponent(id)}/logs${q.size ? `?${q}` : ''}`, (chunk) => process.stdout.write(chunk));
  });

program
  .command('act <id> <action>')
  .description('recover a held migration: wipe-and-retry | resume | accept-partial | abandon (operator)')
  .requiredOption('--reason <text>', 'why, for the history')
  .action(async (id: string, action: string, opts: { reason: string }) => {
    const { api, flags } = client();
    const m = await api.request<MigrationView>('POST', `/v1/migrations/${encodeURIComponent(id)}/actions`, { json: { action, reason: opts.reason } });
    print(flags, m, () => `${m.id}: ${action} → ${m.state}`);
  });

program
  .command('cancel <id>')
  .description('cancel a migration; a running attempt is stopped first (operator)')
  .option('--reason <text>')
  .action(async (id: string, opts: { reason?: string }) => {
    const { api, flags } = client();
    const m = await api.request<MigrationView>('POST', `/v1/migrations/${encodeURIComponent(id)}/cancel`, { json: opts.reason ? { reason: opts.reason } : {} });
    print(flags, m, () => `${m.id} ${m.state}`);
  });

program
  .command('close-issue <ref>')
  .description('close an issue: cancel its migrations and remove every per-job artifact (operator)')
  .action(async (ref: string) => {
    const { api, flags } = client();
    const r = await api.request<{ issue: string; cancelled: string[]; removed: Array<{ migrationId: string; kind: string; ref: string }> }>(
      'POST',
      `/v1/issues/${encodeURIComponent(ref)}/close`,
      { json: {} },
    );
    print(flags, r, () =>
      [
        `issue ${r.issue} closed; cancelled ${r.cancelled.length}, removed ${r.removed.length} artifact(s)`,
        ...(r.removed.length
          ? [
              '',
              table(
                ['MIGRATION', 'KIND', 'REF'],
                r.removed.map((a) => [a.migrationId, a.kind, a.ref]),
              ),
            ]
          : []),
      ].join('\n'),
    );
  });

function describeResources(r: Record<string, number>): string {
  return Object.entries(r)
    .map(([d, v]) => `${d}=${formatQuantity(d, v)}`)
    .join(' ');
}

function exitCodeFor(err: unknown): number {
  if (err instanceof ApiError) {
    if (err.code === 'FERRY_REJECTED') return EXIT.rejected;
    if (err.status === 409) return EXIT.wrongState;
    if (err.code === 'FERRY_INVALID_REQUEST' || err.code === 'FERRY_BAD_REQUEST' || err.status === 413 || err.status === 415) return EXIT.usage;
    return EXIT.failure;
  }
  if (err instanceof FerryError) return err.code === 'FERRY_INVALID_REQUEST' ? EXIT.usage : EXIT.failure;
  return EXIT.failure;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    const flags = program.opts<GlobalFlags>();
    // Every message is redacted on the way out: a server, a proxy or a library may echo the token.
    const say = (stream: NodeJS.WriteStream, text: string) => stream.write(redact(text, tokenInUse));
    if (err instanceof ApiError && err.code === 'FERRY_REJECTED' && !flags.json && err.body.verdict) {
      say(process.stderr, `${verdictTable(err.body.verdict as Verdict)}\n\n`);
    }
    if (flags.json && err instanceof ApiError) say(process.stdout, `${JSON.stringify(err.body, null, 2)}\n`);
    say(process.stderr, `ferry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
