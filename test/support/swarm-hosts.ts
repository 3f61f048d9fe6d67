/**
 * A real two-host Docker swarm on one machine: two `dockerd` (Debian's docker.io), each in a
 * network namespace of its own and under a host name of its own, joined by a veth pair. Host 1 is
 * the manager, host 2 a worker. The test process reaches both engines by their unix sockets.
 *
 *   netns ferryswarm-<pid>-<id>-1  ◀──veth fs<id>a / fs<id>b──▶  netns ferryswarm-<pid>-<id>-2
 *   10.232.N.1/24, hostname ferry-h1-<pid>-<id>                     10.232.N.2/24, hostname ferry-h2-<pid>-<id>
 *   dockerd: manager (swarm init, :2377)                            dockerd: worker (swarm join)
 *
 *   <root> = $TMPDIR/ferry-swarm-<pid>-<id>/h1|h2/
 *     docker.sock  docker.pid  dockerd.log  data/ (--data-root)  exec/ (--exec-root: its own containerd)
 *   cgroup parent /ferry-swarm-<pid>-<id>-1|2 (task containers; leftovers are killed through it)
 *
 * dockerd is started as `nsenter --net=<ns> -- unshare --uts sh -c 'hostname H; exec dockerd ...'`:
 * only the network and UTS namespaces are its own. Not `ip netns exec`, which also makes a mount
 * namespace: then overlay and volume mounts would be invisible to the test and to teardown. Each
 * engine's managed containerd lives under its exec root (socket, state, config), data under its
 * data root; the only shared place is /run/containerd/s/, where shims put sockets named by a hash
 * of the containerd address, so they never clash. Each node carries the node label
 * `ferry.engine-socket=<its socket>`, and both engines have the images of
 * /var/lib/ferry-swarm/images.tar (`bash scripts/setup-swarm.sh` writes it).
 *
 * What a run creates is registered (by pid) before it is created, so a later run removes what a
 * crashed run left: processes, mounts, cgroups, namespaces, folders. As test/support/netns.ts does.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const DOCKERD = '/usr/sbin/dockerd';
/** Debian's client; /usr/local/bin/docker may be another one. */
const DOCKER = '/usr/bin/docker';
const IMAGES_TAR = '/var/lib/ferry-swarm/images.tar';
const PREFIX = 'ferry-swarm-';
const NETNS_PREFIX = 'ferryswarm-';
const REGISTRY = join(tmpdir(), 'ferry-swarm-hosts-registry');

export interface SwarmHost {
  /** Its host name, which is also its swarm node's hostname (`node.hostname==<name>`). */
  readonly name: string;
  readonly netns: string;
  /** Absolute path of its engine's unix socket (also its node label `ferry.engine-socket`). */
  readonly socket: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** Its address on the veth (swarm advertise and listen address). */
  readonly address: string;
  readonly nodeId: string;
  /** Its dockerd's log (every start appends; removed by close()). */
  readonly log: string;
  /** The running dockerd's pid (it changes with restartEngine), or 0 when none runs. */
  pid(): number;
}

export interface TwoHostSwarm {
  readonly manager: SwarmHost;
  readonly worker: SwarmHost;
  /** Debian's docker CLI against `host`'s engine; its stdout, trimmed. Rejects with its stderr. */
  docker(host: SwarmHost, ...args: string[]): Promise<string>;
  /**
   * kill -9 the host's dockerd and wait until it is gone. Its managed containerd dies with it
   * (dockerd starts it with a parent-death SIGKILL); each running container and its
   * containerd-shim-runc-v2 survive, but what they print meanwhile is lost. The manager shows the
   * node `down` after 10-15 s; its tasks stay `running` there (swarmkit orphans them after 24 h).
   */
  killEngine(host: SwarmHost): Promise<void>;
  /**
   * Start the host's dockerd again with the same arguments; resolves once it answers and the manager
   * sees its node ready. Without live-restore, the new dockerd stops every container still running
   * before it answers (SIGTERM, 10 s, SIGKILL): the task ends `failed`, exit 137, and is not rerun;
   * a container that ended while the engine was down reports its own exit code.
   */
  restartEngine(host: SwarmHost): Promise<void>;
  /**
   * The worker leaves (`swarm leave --force` on it: its engine removes its task containers at once),
   * then the manager removes its node (`node rm --force`): its tasks turn `orphaned` (desired
   * `shutdown`, no exit code) at once. Between the two the manager still shows them `running`.
   */
  removeFromSwarm(host: SwarmHost): Promise<void>;
  /** Where `volume` lives on `host` (a folder on this machine's file system). */
  volumeMountpoint(host: SwarmHost, volume: string): Promise<string>;
  /** Tear everything down (idempotent; never throws, also when half torn down already). */
  close(): Promise<void>;
}

export interface SwarmHostsOptions {
  /** `docker save` tar loaded into both engines; default /var/lib/ferry-swarm/images.tar. */
  readonly imagesTar?: string;
  /** How long each wait (engine up, node ready) may take; default 60 s. */
  readonly timeoutMs?: number;
}

// ───────────────────────────────────────────────────────────────────────── availability

/** Null when this process can start a two-host swarm; otherwise why not. */
export function swarmHostsUnavailable(imagesTar = IMAGES_TAR): string | null {
  const missing = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error !== undefined;
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces and dockerd need root)';
  if (missing('ip')) return '`ip` not found (apt-get install iproute2)';
  if (missing('nsenter') || missing('unshare')) return 'nsenter/unshare not found (apt-get install util-linux)';
  if (!existsSync(DOCKERD) || !existsSync(DOCKER)) return `${DOCKERD} or ${DOCKER} not found (apt-get install docker.io)`;
  if (!existsSync(imagesTar)) return `${imagesTar} not found: run \`bash scripts/setup-swarm.sh\` (it saves the test images there)`;
  return null;
}

// ───────────────────────────────────────────────────────────────────────── teardown

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** Alive and not a zombie: a killed dockerd that nobody reaped (its parent died) still answers kill 0. */
function alive(pid: number): boolean {
  const stat = readOr(`/proc/${pid}/stat`, '');
  return stat !== '' && stat[stat.lastIndexOf(')') + 2] !== 'Z';
}

/**
 * What a run creates (registered before it is created). All of it is named after the run's tag
 * (`<pid>-<random>`), so a leftover found by name yields the whole registration too.
 */
type Registration = ReturnType<typeof registrationOf>;
function registrationOf(tag: string) {
  return {
    pid: Number(tag.split('-')[0]),
    root: join(tmpdir(), `${PREFIX}${tag}`),
    netns: [`${NETNS_PREFIX}${tag}-1`, `${NETNS_PREFIX}${tag}-2`],
    veth: `fs${tag.split('-')[1]}a`,
    cgroups: [`${PREFIX}${tag}-1`, `${PREFIX}${tag}-2`],
  };
}

/** Processes whose command line names `root` (dockerds, their containerds, the shims), with their argv. */
function processesUnder(root: string): Array<{ pid: number; argv: string[] }> {
  const found: Array<{ pid: number; argv: string[] }> = [];
  for (const pid of readdirSync('/proc').map(Number)) {
    const argv = Number.isInteger(pid) && pid !== process.pid ? readOr(`/proc/${pid}/cmdline`, '').split('\0') : [];
    if (argv.some((a) => a.includes(root)) && alive(pid)) found.push({ pid, argv });
  }
  return found;
}

async function stopProcesses(procs: ReadonlyArray<{ pid: number }>, graceMs: number): Promise<void> {
  const pids = procs.map((p) => p.pid);
  for (const pid of pids) quietly(() => process.kill(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL'));
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(alive)) quietly(() => process.kill(pid, 'SIGKILL'));
  while (pids.some(alive)) await sleep(50);
}

/**
 * A killed shim leaves its socket in /run/containerd/s/, named sha256(<containerd address>/<namespace>/<id>)
 * (containerd 1.6 runtime/v2/shim SocketAddress).
 */
function shimSocket(argv: string[]): string | null {
  const arg = (flag: string) => argv[argv.indexOf(flag) + 1] ?? '';
  const key = join(arg('-address'), arg('-namespace'), arg('-id'));
  return argv[0]?.includes('containerd-shim') ? join('/run/containerd/s', createHash('sha256').update(key).digest('hex')) : null;
}

/** Kill every process in the cgroup (every hierarchy: v1 controllers or the v2 tree), then remove it, children first. */
async function removeCgroup(cgroup: string): Promise<void> {
  const walk = (dir: string, visit: (d: string) => void): void => {
    quietly(() => readdirSync(dir, { withFileTypes: true }).forEach((e) => e.isDirectory() && walk(join(dir, e.name), visit)));
    visit(dir);
  };
  const procs = (d: string) => readOr(join(d, 'cgroup.procs'), '').split('\n').filter(Boolean).map(Number);
  for (let attempt = 0; attempt < 25; attempt++) {
    const dirs = ['', ...readdirSync('/sys/fs/cgroup')].map((c) => join('/sys/fs/cgroup', c, cgroup)).filter((d) => existsSync(join(d, 'cgroup.procs')));
    if (dirs.length === 0) return;
    for (const top of dirs) walk(top, (d) => procs(d).forEach((pid) => quietly(() => process.kill(pid, 'SIGKILL'))));
    for (const top of dirs) walk(top, (d) => quietly(() => rmdirSync(d)));
    await sleep(100);
  }
}

/** Lazily unmount all at or under `root`, deepest first: overlays, shm, nsfs, and the data root's own bind mount. */
function unmountUnder(root: string): void {
  for (let pass = 0; pass < 3; pass++) {
    const points = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((p) => p === root || p.startsWith(`${root}/`))
      .sort((a, b) => b.length - a.length);
    for (const p of points) quietly(() => execFileSync('umount', ['-l', p], { stdio: 'pipe' }));
  }
}

/** Remove all a registration names. `graceMs`: how long each dockerd may take to stop its containers. */
async function teardown(r: Registration, graceMs: number): Promise<void> {
  // dockerd first and gently: it stops its containers and unmounts what it mounted.
  await stopProcesses(
    processesUnder(r.root).filter((p) => p.argv[0] === DOCKERD),
    graceMs,
  );
  const rest = processesUnder(r.root);
  await stopProcesses(rest, 0);
  for (const socket of rest.map((p) => shimSocket(p.argv))) if (socket !== null) rmSync(socket, { force: true });
  for (const cgroup of r.cgroups) await removeCgroup(cgroup);
  unmountUnder(r.root);
  for (const ns of r.netns) quietly(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' }));
  quietly(() => execFileSync('ip', ['link', 'del', r.veth], { stdio: 'pipe' }));
  rmSync(r.root, { recursive: true, force: true });
}

/** Remove what runs that are no longer alive left behind: registered, or found by name (folder, namespace, cgroup). */
export async function cleanStaleSwarmHosts(): Promise<void> {
  const stale = new Map<string, Registration>();
  for (const file of existsSync(REGISTRY) ? readdirSync(REGISTRY) : []) {
    quietly(() => stale.set(file.replace(/\.json$/, ''), JSON.parse(readFileSync(join(REGISTRY, file), 'utf8')) as Registration));
  }
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const names = [...readdirSync(tmpdir()), ...namespaces.split('\n'), ...(existsSync('/sys/fs/cgroup/pids') ? readdirSync('/sys/fs/cgroup/pids') : [])];
  for (const name of names) {
    const tag = /^ferry-?swarm-(\d+-[0-9a-f]{8})(?:-[12])?(?: |$)/.exec(name)?.[1];
    if (tag !== undefined && !stale.has(tag)) stale.set(tag, registrationOf(tag));
  }
  for (const [tag, r] of stale) {
    if (alive(r.pid)) continue;
    await teardown(r, 0);
    rmSync(join(REGISTRY, `${tag}.json`), { force: true });
  }
}

// ───────────────────────────────────────────────────────────────────────── the swarm

function ip(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || String(err)}`);
  }
}

/** Poll `probe` every 200 ms until it returns a truthy value; fails naming `what` (and `hint`) after `ms`. */
async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>, hint = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s${last ? ` (last error: ${String(last)})` : ''}${hint()}`);
    await sleep(200);
  }
}

interface Host extends SwarmHost {
  nodeId: string;
  readonly dir: string;
  readonly cgroup: string;
}

/**
 * Start the two hosts, make the swarm, label the nodes and load the images (about 2.5 s here); first
 * removes what dead runs left. The caller must close() it, also when its test fails.
 */
export async function startTwoHostSwarm(options: SwarmHostsOptions = {}): Promise<TwoHostSwarm> {
  const imagesTar = options.imagesTar ?? IMAGES_TAR;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const why = swarmHostsUnavailable(imagesTar);
  if (why !== null) throw new Error(`cannot start a two-host swarm: ${why}`);
  await cleanStaleSwarmHosts();

  const id = randomBytes(4).toString('hex');
  const tag = `${process.pid}-${id}`;
  const registration = registrationOf(tag);
  const root = registration.root;
  // Both ends live in the two namespaces only, so the subnet cannot clash with the host's or another run's.
  const subnet = randomBytes(1)[0]!;
  const hosts: Host[] = [1, 2].map((n) => {
    const dir = join(root, `h${n}`);
    return {
      name: `ferry-h${n}-${tag}`,
      netns: registration.netns[n - 1]!,
      socket: join(dir, 'docker.sock'),
      dataRoot: join(dir, 'data'),
      execRoot: join(dir, 'exec'),
      address: `10.232.${subnet}.${n}`,
      nodeId: '',
      log: join(dir, 'dockerd.log'),
      dir,
      cgroup: registration.cgroups[n - 1]!,
      pid: () => {
        const pid = Number(readOr(join(dir, 'docker.pid'), '0'));
        return pid > 0 && alive(pid) ? pid : 0;
      },
    };
  });
  const [manager, worker] = hosts as [Host, Host];
  const registryFile = join(REGISTRY, `${tag}.json`);
  mkdirSync(REGISTRY, { recursive: true, mode: 0o700 });
  writeFileSync(registryFile, JSON.stringify(registration));

  const logTail = (h: Host) => () => `\n--- ${h.name} dockerd.log (last lines):\n${readOr(h.log, '').split('\n').slice(-15).join('\n')}`;
  const docker = async (host: SwarmHost, ...args: string[]): Promise<string> => {
    try {
      const { stdout } = await run(DOCKER, ['-H', `unix://${host.socket}`, ...args], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.trim();
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new Error(`docker ${args.join(' ')} on ${host.name}: ${stderr || String(err)}`, { cause: err });
    }
  };
  const startEngine = async (h: Host): Promise<void> => {
    rmSync(join(h.dir, 'docker.pid'), { force: true });
    rmSync(h.socket, { force: true });
    const flags = ['--iptables=false', '--ip-masq=false', '--bridge=none', '--no-new-privileges', '--shutdown-timeout=2'];
    const paths = ['--data-root', h.dataRoot, '--exec-root', h.execRoot, '--pidfile', join(h.dir, 'docker.pid'), '--host', `unix://${h.socket}`];
    const log = openSync(h.log, 'a');
    const script = `hostname "$0" && exec ${DOCKERD} "$@"`;
    const argv = [`--net=/run/netns/${h.netns}`, '--', 'unshare', '--uts', 'sh', '-c', script, h.name, ...flags, ...paths, `--cgroup-parent=/${h.cgroup}`];
    spawn('nsenter', argv, { detached: true, stdio: ['ignore', log, log] }).unref();
    closeSync(log);
    await until(`dockerd of ${h.name} answering at ${h.socket}`, timeoutMs, () => docker(h, 'version', '--format', '{{.Server.Version}}'), logTail(h));
  };
  const nodeState = (h: Host) => docker(manager, 'node', 'inspect', '--format', '{{.Status.State}}', h.nodeId);
  const nodeReady = (h: Host) => until(`node ${h.name} ready in the swarm`, timeoutMs, async () => (await nodeState(h)) === 'ready', logTail(h));

  let closed: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      try {
        await teardown(registration, 15_000);
        rmSync(registryFile, { force: true });
      } catch (err) {
        console.warn(`swarm-hosts: teardown of ${root} left something (the next run removes it): ${String(err)}`);
      }
    })());

  try {
    mkdirSync(root, { mode: 0o700 });
    ip('link', 'add', `fs${id}a`, 'type', 'veth', 'peer', 'name', `fs${id}b`);
    for (const [i, h] of hosts.entries()) {
      const veth = `fs${id}${'ab'[i]}`;
      mkdirSync(h.dataRoot, { recursive: true });
      mkdirSync(h.execRoot, { recursive: true });
      ip('netns', 'add', h.netns);
      ip('-n', h.netns, 'link', 'set', 'lo', 'up');
      ip('link', 'set', veth, 'netns', h.netns);
      ip('-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', veth);
      ip('-n', h.netns, 'link', 'set', veth, 'up');
    }
    await Promise.all(hosts.map(startEngine));
    const loaded = Promise.all(hosts.map((h) => docker(h, 'load', '-q', '-i', imagesTar)));
    await docker(manager, 'swarm', 'init', '--advertise-addr', manager.address, '--listen-addr', `${manager.address}:2377`);
    const token = await docker(manager, 'swarm', 'join-token', '-q', 'worker');
    const joinArgs = ['--token', token, '--advertise-addr', worker.address, '--listen-addr', `${worker.address}:2377`, `${manager.address}:2377`];
    await docker(worker, 'swarm', 'join', ...joinArgs);
    for (const h of hosts) {
      h.nodeId = await docker(h, 'info', '--format', '{{.Swarm.NodeID}}');
      await nodeReady(h);
      await docker(manager, 'node', 'update', '--label-add', `ferry.engine-socket=${h.socket}`, h.nodeId);
    }
    await loaded;
  } catch (err) {
    await close();
    throw err;
  }

  return {
    manager,
    worker,
    docker,
    async killEngine(host) {
      const pid = host.pid();
      if (pid > 0) await stopProcesses([{ pid }], 0);
    },
    async restartEngine(host) {
      const h = hosts.find((x) => x.name === host.name)!;
      if (h.pid() > 0) throw new Error(`dockerd of ${h.name} still runs (pid ${h.pid()}): killEngine it first`);
      await startEngine(h);
      await until(`${h.name} back in the swarm`, timeoutMs, async () => (await docker(h, 'info', '--format', '{{.Swarm.LocalNodeState}}')) === 'active');
      await nodeReady(h);
    },
    async removeFromSwarm(host) {
      if (host.name === manager.name) throw new Error('the manager cannot leave: that ends the swarm; remove the worker, or close()');
      await docker(host, 'swarm', 'leave', '--force');
      await docker(manager, 'node', 'rm', '--force', host.nodeId);
    },
    volumeMountpoint: (host, volume) => docker(host, 'volume', 'inspect', '--format', '{{.Mountpoint}}', volume),
    close,
  };
}
