/**
 * A Ferry cluster for tests: N real `ferry serve` processes (`--node n1..nN`), each with its own
 * temporary data folder and port, all over one PostgreSQL database (a fresh one per cluster unless
 * told), on the process substrate. A node can be killed (-9 or a clean stop) and started again on
 * the same data folder and name; a node can run inside a network namespace (test/support/netns.ts).
 *
 * Only the first node, on a fresh database, writes `<data-dir>/token`; every other node accepts the
 * same admin token (its digest is in the store), so node 1 starts first and its token serves all.
 *
 * `clusterTest()` wraps a test: it skips loudly (or fails in CI) without PostgreSQL, prints the
 * nodes' output when the test fails, and always stops every node, ends every job the test left,
 * drops the database and removes the data folders.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseQuantity } from '../../src/core/quantity.ts';
import { call, tempDir, waitFor } from './harness.ts';
import type { Netns } from './netns.ts';
import { TestDatabase, requirePostgres } from './postgres.ts';

const BIN = new URL('../../bin/ferry.js', import.meta.url).pathname;
const OUTPUT_LINES = 400;

export interface NodeSpec {
  /** Node name; default n1, n2, ... by position. */
  readonly name?: string;
  /** More `ferry serve` flags for this node (e.g. `--capacity-cpu 1`). */
  readonly args?: readonly string[];
  /** More environment for this node. */
  readonly env?: Readonly<Record<string, string>>;
  /** Run this node inside the namespace: it listens on 0.0.0.0 there and is reached at `netns.nsIp`. */
  readonly netns?: Netns;
}

export interface ClusterOptions {
  /** How many nodes (n1..nN), or each node's spec. */
  readonly nodes: number | readonly NodeSpec[];
  /** FERRY_NODE_LOST_AFTER for every node (e.g. '3s'); default: Ferry's own. */
  readonly lostAfter?: string;
  /** The database URL each node connects to; default: a fresh database on the test PostgreSQL, dropped at stop. */
  readonly databaseUrl?: string | ((spec: NodeSpec & { name: string }) => string);
  /** Flags and environment for every node (a node's own come after). */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

type ApiResult<T> = { status: number; body: T; headers: Headers };

export interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  readonly spec: NodeSpec & { name: string };
  /** The node's API address (as the test reaches it). */
  readonly url: string;
  /** The live process, or null while the node is down. */
  readonly child: ChildProcess | null;
  readonly running: boolean;
  /** The API with the cluster's admin token (or `token`, when given). */
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult<T>>;
  /** kill(2) the process with `signal` (default SIGKILL) and wait for it to exit; its exit code or signal. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Start the node again on the same data folder and with the same name (after kill()). */
  restart(): Promise<void>;
  /** What the node printed (stdout and stderr, every run), last lines. */
  output(): string;
}

export interface Cluster {
  readonly nodes: readonly ClusterNode[];
  /** The admin token node 1 wrote; it works on every node. */
  readonly token: string;
  /** The database URL host-side nodes use. */
  readonly databaseUrl: string;
  node(name: string): ClusterNode;
  /**
   * Start one more `ferry serve` on this cluster's database (a new data folder) that is expected to
   * exit by itself: resolves with its exit code and output, or rejects if it is still up after `ms`.
   */
  startExpectingExit(spec: NodeSpec & { name: string }, ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
  /** Everything every node printed, for a failure message. */
  output(): string;
  /** Close every issue, stop every node, end leftover jobs, drop the database, remove the folders (idempotent). */
  stop(): Promise<void>;
}

/** The `ferry-supervise` processes whose command line names `dir` (a node's jobs). */
export function supervisorsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('ferry-supervise') && cmd.includes(dir)) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

class Node implements ClusterNode {
  child: ChildProcess | null = null;
  url = '';
  private lines: string[] = [];
  private runs = 0;
  private startLogged = false;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(
    readonly spec: NodeSpec & { name: string },
    readonly dataDir: string,
    private readonly cluster: ClusterImpl,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult<T>> {
    return call(this.url, this.cluster.token, method, path, body, headers) as Promise<ApiResult<T>>;
  }

  output(): string {
    return this.lines.join('\n');
  }

  private note(text: string): void {
    if (text.includes('ferry listening on')) this.startLogged = true;
    for (const line of text.split('\n')) if (line.trim() !== '') this.lines.push(`[${this.name}#${this.runs}] ${line}`);
    if (this.lines.length > OUTPUT_LINES) this.lines.splice(0, this.lines.length - OUTPUT_LINES);
  }

  /** Spawn `ferry serve` for this node and wait until it answers /healthz. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`node ${this.name} is already running`);
    this.runs += 1;
    this.startLogged = false;
    const serverUrlFile = join(this.dataDir, 'server-url');
    rmSync(serverUrlFile, { force: true });
    const child = spawnServe(this.spec, this.dataDir, this.cluster);
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => this.note(d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.note(d));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const written = await waitFor(
      `node ${this.name} to write its url`,
      () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`node ${this.name} exited (${child.exitCode ?? child.signalCode}):\n${this.output()}`);
        }
        return existsSync(serverUrlFile) ? readFileSync(serverUrlFile, 'utf8').trim() : null;
      },
      60_000,
    );
    const url = new URL(written);
    // A node in a namespace listens on 0.0.0.0 there; the test reaches it through the veth.
    if (this.spec.netns) url.hostname = this.spec.netns.nsIp;
    this.url = url.origin;
    await waitFor(`node ${this.name} to answer /healthz`, async () => (await call(this.url, null, 'GET', '/healthz')).status === 200, 30_000);
    // `ferry serve` handles SIGTERM once its start is logged (a signal before that kills it by default).
    await waitFor(`node ${this.name} to log its start`, () => this.startLogged, 30_000);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child === null || this.exited === null) throw new Error(`node ${this.name} was never started`);
    if (this.running) this.child.kill(signal);
    const result = await this.exited;
    this.note(`(test: exited with ${result.code ?? result.signal} after ${signal})`);
    return result;
  }

  async restart(): Promise<void> {
    if (this.running) throw new Error(`node ${this.name} is still running; kill() it first`);
    await this.start();
  }

  /** Stop for good: SIGTERM, then SIGKILL if it is still up after `ms`. */
  async shutdown(ms = 15_000): Promise<void> {
    if (!this.running || this.exited === null) return;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A node in a namespace keeps one port across restarts: the others forward to the address it advertises. */
const netnsPorts = new Map<string, number>();

function serveArgs(spec: NodeSpec & { name: string }, dataDir: string, cluster: ClusterImpl): string[] {
  let listen = ['--port', '0'];
  if (spec.netns) {
    const port = netnsPorts.get(spec.name) ?? 20000 + Math.floor(Math.random() * 20000);
    netnsPorts.set(spec.name, port);
    listen = ['--port', String(port), '--host', '0.0.0.0', '--advertise-url', `http://${spec.netns.nsIp}:${port}`];
  }
  return [
    BIN,
    '--data-dir',
    dataDir,
    'serve',
    ...listen,
    '--node',
    spec.name,
    '--database-url',
    cluster.databaseUrlFor(spec),
    ...(cluster.options.args ?? []),
    ...(spec.args ?? []),
  ];
}

function spawnServe(spec: NodeSpec & { name: string }, dataDir: string, cluster: ClusterImpl): ChildProcess {
  const args = serveArgs(spec, dataDir, cluster);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...(cluster.options.lostAfter ? { FERRY_NODE_LOST_AFTER: cluster.options.lostAfter } : {}),
    ...cluster.options.env,
    ...spec.env,
  };
  // nsenter (or `ip netns exec`) execs the command in the namespace: the child's pid is the node's.
  const [cmd, ...rest] = spec.netns ? [...spec.netns.exec, process.execPath, ...args] : [process.execPath, ...args];
  return spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env });
}

class ClusterImpl implements Cluster {
  readonly nodes: Node[] = [];
  token = '';
  readonly databaseUrl: string;
  private readonly extraDirs: string[] = [];
  private stopped = false;

  constructor(
    readonly options: ClusterOptions,
    private readonly ownDatabase: TestDatabase | null,
  ) {
    this.databaseUrl = ownDatabase ? ownDatabase.url : typeof options.databaseUrl === 'string' ? options.databaseUrl : '';
  }

  databaseUrlFor(spec: NodeSpec & { name: string }): string {
    const given = this.options.databaseUrl;
    if (typeof given === 'function') return given(spec);
    return this.databaseUrl;
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in this cluster (${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  async startExpectingExit(spec: NodeSpec & { name: string }, ms = 30_000) {
    const dataDir = tempDir(`ferry-node-${spec.name}-`);
    this.extraDirs.push(dataDir);
    const child = spawnServe(spec, dataDir, this);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref());
    const result = await Promise.race([exited, timeout]);
    if (result === null) {
      child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(late);
      throw new Error(`a second ferry serve for node ${spec.name} was still running after ${ms} ms:\n${output}`);
    }
    // Let the pipes drain.
    await new Promise((r) => setTimeout(r, 50));
    return { ...result, output };
  }

  output(): string {
    return this.nodes.map((n) => n.output()).join('\n');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // FERRY_TEST_NODE_OUTPUT=1: show what every node printed, also when the test passed.
    if (process.env.FERRY_TEST_NODE_OUTPUT === '1') console.error(`--- node output\n${this.output()}\n--- end of node output`);
    const problems: string[] = [];
    // Close every issue through a node that answers, so that each node tears its jobs down.
    const live = this.nodes.filter((n) => n.running);
    for (const n of live) {
      try {
        const res = await fetch(`${n.url}/v1/migrations?limit=500`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(5000) });
        if (res.status !== 200) continue;
        const all = (await res.json()) as Array<{ issue: string }>;
        for (const issue of new Set(all.map((m) => m.issue))) {
          await fetch(`${n.url}/v1/issues/${encodeURIComponent(issue)}/close`, {
            method: 'POST',
            headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
            body: '{}',
            signal: AbortSignal.timeout(10_000),
          }).catch(() => undefined);
        }
        break;
      } catch {
        // try the next node
      }
    }
    const dirs = this.nodes.map((n) => n.dataDir);
    await waitFor('the nodes to end their jobs', () => dirs.every((d) => supervisorsUnder(d).length === 0), 10_000).catch(() => undefined);
    await Promise.all(this.nodes.map((n) => n.shutdown()));
    // Jobs nobody could tear down (a node that was down, a cut link): end them, by pid.
    for (const dir of dirs) {
      for (const pid of supervisorsUnder(dir)) {
        problems.push(`supervisor ${pid} under ${dir} was still running after the test; killed`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    if (this.ownDatabase) await this.ownDatabase.drop().catch((err: unknown) => problems.push(`drop database: ${String(err)}`));
    for (const dir of [...dirs, ...this.extraDirs]) rmSync(dir, { recursive: true, force: true });
    if (problems.length > 0) console.warn(`cluster cleanup:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * Start a cluster: node 1 first (it writes the admin token on the fresh database), then the others
 * in parallel. On any failure everything started is stopped before the error is thrown.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const specs: Array<NodeSpec & { name: string }> = (
    typeof options.nodes === 'number' ? Array.from({ length: options.nodes }, () => ({}) as NodeSpec) : [...options.nodes]
  ).map((s, i) => ({ ...s, name: s.name ?? `n${i + 1}` }));
  const own = options.databaseUrl === undefined ? new TestDatabase() : null;
  if (own) await own.ensure();
  const cluster = new ClusterImpl(options, own);
  try {
    for (const spec of specs) cluster.nodes.push(new Node(spec, tempDir(`ferry-node-${spec.name}-`), cluster));
    const [first, ...rest] = cluster.nodes;
    if (!first) throw new Error('a cluster needs at least one node');
    await first.start();
    cluster.token = readFileSync(join(first.dataDir, 'token'), 'utf8').trim();
    await Promise.all(rest.map((n) => n.start()));
    return cluster;
  } catch (err) {
    const output = cluster.output();
    await cluster.stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- node output\n${output}`, { cause: err });
  }
}

/**
 * A test with a cluster of its own: skipped loudly without PostgreSQL (failing in CI), the nodes'
 * output printed when it fails, and the cluster stopped and removed whatever happens.
 */
export function clusterTest(name: string, options: ClusterOptions, body: (c: Cluster, t: TestContext) => Promise<void>): void {
  void test(name, async (t) => {
    if (!(await requirePostgres(t))) return;
    const cluster = await startCluster(options);
    try {
      await body(cluster, t);
    } catch (err) {
      console.error(`--- output of the nodes of "${name}"\n${cluster.output()}\n--- end of node output`);
      throw err;
    } finally {
      await cluster.stop();
    }
  });
}

// ───────────────────────────────────────────────────────────────────────── API helpers

export interface TenantView {
  id: string;
  node: string | null;
  data: string | null;
  [key: string]: unknown;
}

/** Register tenant `id` through `via` (on `node`, or on `via` itself), steady-state 1 cpu / 512Mi unless told. */
export async function registerTenant(via: ClusterNode, id: string, options: { node?: string; steadyState?: Record<string, string> } = {}): Promise<TenantView> {
  const body: Record<string, unknown> = { steadyState: options.steadyState ?? { cpu: '1', memory: '512Mi' } };
  if (options.node !== undefined) body.node = options.node;
  const r = await via.api<TenantView>('PUT', `/v1/tenants/${id}`, body);
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /v1/tenants/${id} via ${via.name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The folder of a tenant's data: its `data`, or `<its node's data-dir>/tenants/<id>`. */
export function tenantDataDir(cluster: Cluster, tenant: TenantView): string {
  if (tenant.data) return tenant.data;
  if (!tenant.node) throw new Error(`tenant ${tenant.id} has no node`);
  return join(cluster.node(tenant.node).dataDir, 'tenants', tenant.id);
}

/** File `doc` through `via`; the new migration's id. */
export async function file(via: ClusterNode, doc: Record<string, unknown>): Promise<string> {
  const r = await via.api<{ id: string }>('POST', '/v1/migrations', doc);
  if (r.status !== 201) throw new Error(`file via ${via.name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** Approve migration `id` through `via`. */
export async function approve(via: ClusterNode, id: string): Promise<void> {
  const r = await via.api('POST', `/v1/migrations/${id}/approve`, {});
  if (r.status !== 200) throw new Error(`approve ${id} via ${via.name}: ${r.status} ${JSON.stringify(r.body)}`);
}

export interface AttemptView {
  number: number;
  node?: string | null;
  step: number;
  exitCode: number | null;
  cause: string | null;
  startedAt: string;
  endedAt: string | null;
  [key: string]: unknown;
}

export interface EventView {
  at: string;
  actor: string;
  kind: string;
  from: string | null;
  to: string | null;
  reason: unknown;
  detail: unknown;
}

export interface ArtifactView {
  kind: string;
  ref: string;
  state: string;
  node?: string | null;
  removedAt: string | null;
}

export interface MigrationView {
  id: string;
  issue: string;
  tenant: string;
  state: string;
  node?: string | null;
  heldCause: string | null;
  heldDetail: string | null;
  attempts: AttemptView[];
  events: EventView[];
  artifacts: ArtifactView[];
  [key: string]: unknown;
}

/** GET /v1/migrations/:id through `via`. */
export async function migration(via: ClusterNode, id: string): Promise<MigrationView> {
  const r = await via.api<MigrationView>('GET', `/v1/migrations/${id}`);
  if (r.status !== 200) throw new Error(`GET /v1/migrations/${id} via ${via.name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Wait until migration `id`, read through `via`, is in `state`; returns it. */
export function waitForState(via: ClusterNode, id: string, state: string, ms = 30_000): Promise<MigrationView> {
  let last = '';
  return waitFor(
    `migration ${id} to be ${state} (read through ${via.name})`,
    async () => {
      const m = await migration(via, id);
      last = m.state;
      if (m.state === state) return m;
      if (state !== 'held' && m.state === 'held') throw new Error(`migration ${id} is held (${m.heldCause}: ${m.heldDetail}), not ${state}`);
      throw new Error(`still ${last}`);
    },
    ms,
  );
}

export interface NodeView {
  name: string;
  state: 'up' | 'lost' | 'left';
  url: string | null;
  substrate: string;
  capacity: Record<string, string | number>;
  running: { migrations: string[]; peaks: Record<string, string | number> };
  lastSeenAt: string;
  startedAt: string;
}

/** GET /v1/nodes through `via`. */
export async function nodesOf(via: ClusterNode): Promise<NodeView[]> {
  const r = await via.api<{ nodes: NodeView[] }>('GET', '/v1/nodes');
  if (r.status !== 200) throw new Error(`GET /v1/nodes via ${via.name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.nodes;
}

/**
 * A quantity of the API in Ferry's units (cpu in millicores, memory in bytes): the API gives numbers
 * already in those units; a string is a Kubernetes quantity.
 */
export function amount(dimension: string, value: string | number | undefined): number {
  if (value === undefined) return 0;
  return typeof value === 'number' ? value : parseQuantity(dimension, value);
}

/** Wait until `via` shows node `name` in `state`; returns its view. */
export function waitForNodeState(via: ClusterNode, name: string, state: NodeView['state'], ms = 30_000): Promise<NodeView> {
  return waitFor(
    `node ${name} to be ${state} (read through ${via.name})`,
    async () => {
      const n = (await nodesOf(via)).find((x) => x.name === name);
      if (n?.state === state) return n;
      throw new Error(`it is ${n?.state ?? 'not listed'}`);
    },
    ms,
  );
}

/** Read `name` in a folder, or null when it does not exist. */
export function readIn(dir: string, name: string): string | null {
  const path = join(dir, name);
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Sleep `ms`: only to give something that must NOT happen a chance to happen, never to time anything. */
export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
