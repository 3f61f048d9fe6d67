/**
 * A network partition for real: a network namespace joined to the host by a veth pair, and a
 * private PostgreSQL instance (Debian's `initdb`/`pg_ctl`, run as the `postgres` user) listening on
 * the host side of the pair. A Ferry node started inside the namespace (`nsenter --net`) reaches
 * that PostgreSQL only through the veth; `cut()` takes the host side down, `restore()` brings it
 * back. Nodes on the host reach the same PostgreSQL on 127.0.0.1 (or the host-side address).
 *
 *   host:  <hostVeth> 10.231.N.1/24  ◀──veth──▶  <nsVeth> 10.231.N.2/24 :netns <name>
 *          PostgreSQL on 127.0.0.1 and 10.231.N.1
 *
 * Names carry this process's pid, so a later run removes what a crashed run left behind (its
 * namespace, its PostgreSQL) and parallel runs never collide. Needs root and `ip`; when either is
 * missing a test skips loudly, except in CI (CI=true), where it fails.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

const NETNS_PREFIX = 'ferrytest-';
const REGISTRY = join(tmpdir(), 'ferry-netns-registry');

/** What a run created, written before it is created, so a later run can remove it if this one dies. */
interface Registration {
  readonly pid: number;
  readonly netns: string | null;
  readonly hostVeth: string | null;
  readonly pgDir: string | null;
}

// ───────────────────────────────────────────────────────────────────────── availability

function hasIp(): boolean {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The folder with Debian's initdb and pg_ctl (the newest installed version), or null. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : null;
}

function hasNsenter(): boolean {
  try {
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasPostgresUser(): boolean {
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Null when this process can make network namespaces and a private PostgreSQL; otherwise why not. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces need root)';
  if (!hasIp()) return '`ip` not found (apt-get install iproute2)';
  if (postgresBinDir() === null) return 'initdb/pg_ctl not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)';
  if (!hasPostgresUser()) return 'no postgres user (apt-get install postgresql)';
  try {
    const probe = `${NETNS_PREFIX}probe-${process.pid}`;
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || String(err)}`;
  }
  return null;
}

/**
 * True when network namespaces can be made. Otherwise: in CI (CI=true) throws, failing the test;
 * elsewhere marks the test skipped with the reason, warns on the console, and returns false.
 */
export function requireNetns(t: TestContext): boolean {
  const reason = netnsUnavailable();
  if (reason === null) return true;
  const message = `network namespaces unavailable: ${reason}`;
  if (process.env.CI === 'true') {
    throw new Error(`${message}. CI must run the partition test: run as root with iproute2 and postgresql installed (scripts/setup-tests.sh)`);
  }
  console.warn(`\n!!! SKIPPED ${t.name}: ${message} (this test FAILS when CI=true) !!!\n`);
  t.skip(message);
  return false;
}

// ───────────────────────────────────────────────────────────────────────── stale runs

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

function stopPostgresIn(pgDir: string): void {
  const bin = postgresBinDir();
  const data = join(pgDir, 'data');
  if (bin !== null && existsSync(join(data, 'postmaster.pid'))) {
    quietly(() =>
      execFileSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], { stdio: 'pipe' }),
    );
  }
  rmSync(pgDir, { recursive: true, force: true });
}

function removeRegistration(r: Registration): void {
  const { netns, hostVeth } = r;
  if (netns !== null) quietly(() => execFileSync('ip', ['netns', 'del', netns], { stdio: 'pipe' }));
  // Deleting the namespace deletes its end of the pair, and so the pair; in case it never moved in:
  if (hostVeth !== null) quietly(() => execFileSync('ip', ['link', 'del', hostVeth], { stdio: 'pipe' }));
  if (r.pgDir !== null) stopPostgresIn(r.pgDir);
}

/** Remove what runs that are no longer alive left behind: namespaces, veth pairs, PostgreSQL instances. */
export function cleanStaleNetns(): void {
  if (existsSync(REGISTRY)) {
    for (const file of readdirSync(REGISTRY)) {
      const path = join(REGISTRY, file);
      let r: Registration;
      try {
        r = JSON.parse(readFileSync(path, 'utf8')) as Registration;
      } catch {
        continue;
      }
      if (alive(r.pid)) continue;
      removeRegistration(r);
      rmSync(path, { force: true });
    }
  }
  // Namespaces of dead runs that never got as far as the registry.
  let listed = '';
  quietly(() => (listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })));
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    if (m && !alive(Number(m[1]))) quietly(() => execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' }));
  }
}

// ───────────────────────────────────────────────────────────────────────── the namespace

/** A free TCP port on this host (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A /24 in 10.231.0.0/16 that no address or route of this host uses yet. */
function freeSubnet(): number {
  const used = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }) + execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  const start = randomBytes(1)[0]!;
  for (let i = 0; i < 256; i++) {
    const n = (start + i) % 256;
    if (!used.includes(`10.231.${n}.`)) return n;
  }
  throw new Error('no free /24 in 10.231.0.0/16');
}

export interface Netns {
  /** The namespace's name (`ip netns exec <name> ...`). */
  readonly name: string;
  readonly hostVeth: string;
  readonly nsVeth: string;
  /** The host side's address (PostgreSQL listens there). */
  readonly hostIp: string;
  /** The namespace side's address (a node inside listens there). */
  readonly nsIp: string;
  /**
   * The command prefix that runs a program inside the namespace: `nsenter --net=...`, which changes
   * the network namespace only (`ip netns exec` also mounts a fresh /sys, hiding the cgroup tree the
   * process substrate enforces limits with); `ip netns exec` where nsenter is missing.
   */
  readonly exec: readonly string[];
  /** Take the host side of the veth down: nothing crosses until restore(). */
  cut(): void;
  /** Bring the host side back up. */
  restore(): void;
  /** Remove the namespace and the pair (idempotent). */
  remove(): void;
}

function ip(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || String(err)}`);
  }
}

function registryPath(id: string): string {
  return join(REGISTRY, `${process.pid}-${id}.json`);
}

function register(id: string, r: Registration): void {
  mkdirSync(REGISTRY, { recursive: true, mode: 0o700 });
  writeFileSync(registryPath(id), JSON.stringify(r));
}

/** A new namespace joined to the host by a veth pair, both ends up, lo up inside. */
export function createNetns(): Netns {
  cleanStaleNetns();
  const id = randomBytes(4).toString('hex');
  const name = `${NETNS_PREFIX}${process.pid}-${id}`;
  const hostVeth = `fh${id}`;
  const nsVeth = `fn${id}`;
  const n = freeSubnet();
  const hostIp = `10.231.${n}.1`;
  const nsIp = `10.231.${n}.2`;
  register(id, { pid: process.pid, netns: name, hostVeth, pgDir: null });
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    removeRegistration({ pid: process.pid, netns: name, hostVeth, pgDir: null });
    rmSync(registryPath(id), { force: true });
  };
  try {
    ip('netns', 'add', name);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth);
    ip('link', 'set', nsVeth, 'netns', name);
    ip('addr', 'add', `${hostIp}/24`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/24`, 'dev', nsVeth);
    ip('netns', 'exec', name, 'ip', 'link', 'set', nsVeth, 'up');
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    remove();
    throw err;
  }
  return {
    name,
    hostVeth,
    nsVeth,
    hostIp,
    nsIp,
    exec: hasNsenter() ? ['nsenter', `--net=/run/netns/${name}`, '--'] : ['ip', 'netns', 'exec', name],
    cut: () => ip('link', 'set', hostVeth, 'down'),
    restore: () => ip('link', 'set', hostVeth, 'up'),
    remove,
  };
}

// ───────────────────────────────────────────────────────────────────────── private PostgreSQL

export interface PrivatePostgres {
  readonly port: number;
  /** Its folder (data in `data/`, log in `postgres.log`), owned by postgres. */
  readonly dir: string;
  /** Connection string for `database` through `host` (127.0.0.1 from the host, the veth address from the namespace). */
  url(database: string, host?: string): string;
  /** Create a database (trust auth, user postgres); returns its name. */
  createDatabase(name?: string): Promise<string>;
  /** Stop it (immediate) and remove its folder (idempotent). */
  stop(): void;
}

/**
 * A PostgreSQL instance of this test's own, on a free port, listening on 127.0.0.1 and `listen`,
 * trusting 127.0.0.1/32 and each of `trust` (CIDRs). The caller removes it with stop().
 */
export async function startPrivatePostgres(options: { listen?: readonly string[]; trust?: readonly string[] } = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error('initdb/pg_ctl not found under /usr/lib/postgresql/*/bin');
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `ferry-pg-${process.pid}-`));
  register(`pg-${id}`, { pid: process.pid, netns: null, hostVeth: null, pgDir: dir });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    stopPostgresIn(dir);
    rmSync(registryPath(`pg-${id}`), { force: true });
  };
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    const data = join(dir, 'data');
    const asPostgres = (cmd: string, args: string[]) => run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { cwd: dir });
    await asPostgres('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const port = await freePort();
    const listen = ['127.0.0.1', ...(options.listen ?? [])];
    appendFileSync(
      join(data, 'postgresql.conf'),
      [
        '',
        `listen_addresses = '${listen.join(',')}'`,
        `port = ${port}`,
        `unix_socket_directories = '${dir}'`,
        'max_connections = 300',
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        "log_min_messages = 'warning'",
        '',
      ].join('\n'),
    );
    const hba = ['local all all trust', 'host all all 127.0.0.1/32 trust', ...(options.trust ?? []).map((cidr) => `host all all ${cidr} trust`), ''];
    writeFileSync(join(data, 'pg_hba.conf'), hba.join('\n'));
    await asPostgres('pg_ctl', ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '60', 'start']);
    const url = (database: string, host = '127.0.0.1') => `postgres://postgres@${host}:${port}/${database}`;
    return {
      port,
      dir,
      url,
      async createDatabase(name = `ferry_${randomBytes(6).toString('hex')}`) {
        const client = new pg.Client({ connectionString: url('postgres'), connectionTimeoutMillis: 10_000 });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE ${name}`);
        } finally {
          await client.end();
        }
        return name;
      },
      stop,
    };
  } catch (err) {
    const log = join(dir, 'postgres.log');
    const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-20).join('\n') : '';
    const stderr = (err as { stderr?: string }).stderr ?? '';
    stop();
    throw new Error(`private PostgreSQL did not start: ${String(err)}\n${stderr}\n${tail}`);
  }
}

/** A namespace and a private PostgreSQL reachable from it (at `netns.hostIp`) and from the host (127.0.0.1). */
export interface Partition {
  readonly netns: Netns;
  readonly postgres: PrivatePostgres;
  /** Stop PostgreSQL, remove the namespace (idempotent; safe after a failed start). */
  remove(): void;
}

export async function startPartition(): Promise<Partition> {
  const netns = createNetns();
  let postgres: PrivatePostgres;
  try {
    postgres = await startPrivatePostgres({ listen: [netns.hostIp], trust: [`${netns.hostIp.replace(/\.1$/, '.0')}/24`] });
  } catch (err) {
    netns.remove();
    throw err;
  }
  return {
    netns,
    postgres,
    remove() {
      postgres.stop();
      netns.remove();
    },
  };
}
