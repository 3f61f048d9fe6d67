/**
 * Real Podman for the container substrate's tests (STYLE.md §9): one substrate per test file,
 * tenant volumes made and removed here, and an afterEach that fails when a test leaves any
 * Ferry-labelled container or volume of its migrations behind (and cleans it up, so one failure
 * does not cascade).
 *
 * Without a Podman socket a test is skipped loudly, except in CI (CI=true), where it fails.
 */
import { afterEach, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { ContainerSubstrate } from '../../../../src/substrates/container/container-substrate.ts';
import type { ContainerSubstrateOptions } from '../../../../src/substrates/container/container-substrate.ts';
import type { StepResult, StepSpec } from '../../../../src/substrates/substrate.ts';
import type { Identity, Tenant } from '../../../../src/core/types.ts';

export const SOCKET_PATH = process.env['FERRY_TEST_PODMAN_SOCKET'] ?? '/run/podman/podman.sock';
export const TEST_IMAGE = 'localhost/ferry-test:1';
const MiB = 1024 * 1024;
/** Test tenants' identities count up from here (each tenant its own uid and gid). */
const FIRST_TEST_UID = 200_100;

export interface TenantOptions {
  /** Default: a uid/gid of its own. */
  readonly runAs?: Identity;
  /** Default false. */
  readonly allowRoot?: boolean;
  /** Hand the volume over to runAs, as registration does. Default true. */
  readonly adopt?: boolean;
}

export interface PodmanEnv {
  readonly substrate: ContainerSubstrate;
  readonly docker: Docker;
  /** Temp folder: the substrate's dataDir and the attempt logs. */
  readonly dir: string;
  newMigrationId(): string;
  /**
   * A new tenant whose data volume holds a few files (one of them a dotfile), made by root and then
   * handed over to the tenant's identity (`adoptTenantData`) unless `adopt: false`.
   */
  tenant(options?: TenantOptions): Promise<Tenant>;
  /** A step spec for a new migration (scratch not created yet; see `prepare`). */
  spec(tenant: Tenant, overrides?: Partial<StepSpec>): StepSpec;
  /** createScratch for the spec's migration. */
  prepare(spec: StepSpec): Promise<void>;
  /** Another substrate on the same engine and dataDir, as a restarted runner would make. */
  restartedSubstrate(): Promise<ContainerSubstrate>;
  /** `path<TAB>content` of every file in a volume, sorted. */
  volumeContent(volume: string): Promise<string>;
  /** `uid:gid mode path` of everything in a volume, its root (`.`) included, sorted; symlinks not followed. */
  volumeOwners(volume: string): Promise<string>;
  /** Run a shell script as root (engine defaults) with the volume at /v; returns its output. */
  asRoot(volume: string, script: string): Promise<string>;
  readLog(spec: StepSpec): string;
  /** Remove job, scratch and log of a spec's migration through the substrate (what issue closure does). */
  cleanup(spec: StepSpec, ref: string): Promise<void>;
}

interface Fixture {
  /** The environment, or null after skipping the test (by hand, without Podman). */
  require(t: TestContext): Promise<PodmanEnv | null>;
}

let answering: Promise<string | null> | null = null;

/** null when the socket answers, else why not. */
function probe(docker: Docker): Promise<string | null> {
  answering ??= Promise.race([
    docker.ping().then(
      () => null,
      (err: unknown) => String((err as Error).message ?? err),
    ),
    new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 3 s'), 3000).unref()),
  ]);
  return answering;
}

export function usePodman(options: Partial<ContainerSubstrateOptions> = {}): Fixture {
  const docker = new Docker({ socketPath: SOCKET_PATH });
  const filePrefix = `t${randomBytes(4).toString('hex')}`;
  const migrationIds = new Set<string>();
  const tenantVolumes: string[] = [];
  const substrates: ContainerSubstrate[] = [];
  let env: PodmanEnv | null = null;
  let dir: string | null = null;
  let counter = 0;

  const make = async (d: string): Promise<ContainerSubstrate> => {
    const s = new ContainerSubstrate({ socketPath: SOCKET_PATH, dataDir: join(d, 'data'), defaultImage: TEST_IMAGE, stopGraceSeconds: 1, ...options });
    await s.init();
    substrates.push(s);
    return s;
  };

  afterEach(async () => {
    if (!env) return;
    const leaked = (await env.substrate.listLabelled()).filter((o) => migrationIds.has(o.migrationId));
    for (const o of leaked) {
      if (o.kind === 'job')
        await docker
          .getContainer(o.ref)
          .remove({ force: true })
          .catch(() => undefined);
    }
    for (const o of leaked) {
      if (o.kind !== 'job')
        await docker
          .getVolume(o.ref)
          .remove()
          .catch(() => undefined);
    }
    assert.deepEqual(leaked, [], 'the test left Ferry-labelled containers or volumes behind');
  });

  after(async () => {
    for (const s of substrates) await s.close();
    for (const v of tenantVolumes)
      await docker
        .getVolume(v)
        .remove()
        .catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  return {
    async require(t) {
      const why = await probe(docker);
      if (why !== null) {
        const reason = `podman socket not answering at ${SOCKET_PATH} (${why}); run .ci/setup-podman.sh`;
        if (process.env['CI'] === 'true') assert.fail(reason);
        console.error(`\n!!! SKIPPED: ${reason}\n`);
        t.skip(reason);
        return null;
      }
      if (env) return env;
      const d = mkdtempSync(join(tmpdir(), 'ferry-container-test-'));
      dir = d;
      const substrate = await make(d);
      const built: PodmanEnv = {
        substrate,
        docker,
        dir: d,
        newMigrationId() {
          const id = `${filePrefix}-m${++counter}`;
          migrationIds.add(id);
          return id;
        },
        async tenant(options = {}) {
          const n = ++counter;
          const id = `${filePrefix}-tenant${n}`;
          const volume = `ferry-test-${id}`;
          await docker.createVolume({ Name: volume, Labels: { 'ferry-test': 'tenant-data' } });
          tenantVolumes.push(volume);
          await runHelper(
            docker,
            [{ Type: 'volume', Source: volume, Target: '/v' }],
            `mkdir -p /v/sub && echo "hello ${id}" > /v/a.txt && echo nested > /v/sub/b.txt && echo hidden > /v/.dot`,
          );
          const tenant: Tenant = {
            id,
            steadyState: { cpu: 500, memory: 64 * MiB },
            data: volume,
            runAs: options.runAs ?? { uid: FIRST_TEST_UID + n, gid: FIRST_TEST_UID + n },
            allowRoot: options.allowRoot ?? false,
          };
          if (options.adopt ?? true) await substrate.adoptTenantData(tenant);
          return tenant;
        },
        spec(tenant, overrides = {}) {
          const migrationId = overrides.migrationId ?? built.newMigrationId();
          return {
            migrationId,
            issue: 'github:acme/platform#742',
            tenant,
            attempt: 1,
            stepIndex: 0,
            stepName: 'copy',
            argv: ['sh', '-c', 'echo hello'],
            env: { FERRY_MIGRATION_ID: migrationId, FERRY_ATTEMPT: '1', FERRY_STEP: '0', FERRY_TENANT: tenant.id },
            limits: { cpu: 500, memory: 64 * MiB },
            scratchRef: substrate.scratchRef(migrationId),
            logPath: join(d, 'logs', `${migrationId}.log`),
            ...overrides,
          };
        },
        async prepare(spec) {
          await substrate.createScratch(spec.scratchRef, { migrationId: spec.migrationId, issue: spec.issue, tenant: spec.tenant });
        },
        restartedSubstrate: () => make(d),
        async volumeContent(volume) {
          return runHelper(
            docker,
            [{ Type: 'volume', Source: volume, Target: '/v', ReadOnly: true }],
            'cd /v && find . -type f | sort | while read f; do echo "$f	$(cat "$f")"; done',
          );
        },
        async volumeOwners(volume) {
          return runHelper(
            docker,
            [{ Type: 'volume', Source: volume, Target: '/v', ReadOnly: true }],
            'cd /v && find . | sort | while read f; do stat -c "%u:%g %a %n" "$f"; done',
          );
        },
        asRoot(volume, script) {
          return runHelper(docker, [{ Type: 'volume', Source: volume, Target: '/v' }], script);
        },
        readLog(spec) {
          try {
            return readFileSync(spec.logPath, 'utf8');
          } catch {
            return '';
          }
        },
        async cleanup(spec, ref) {
          await substrate.remove('job', ref);
          await substrate.remove('scratch', spec.scratchRef);
          await substrate.remove('log', spec.logPath);
        },
      };
      env = built;
      return env;
    },
  };
}

/** Run a shell script in a throw-away container (not Ferry-labelled) and return its output. */
async function runHelper(docker: Docker, mounts: Docker.MountConfig, script: string): Promise<string> {
  const c = await docker.createContainer({
    Image: TEST_IMAGE,
    Entrypoint: ['sh'],
    Cmd: ['-c', script],
    Labels: { 'ferry-test': 'helper' },
    HostConfig: { Mounts: mounts, NetworkMode: 'none' },
  });
  try {
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    const raw = await c.logs({ stdout: true, stderr: true, follow: false });
    const out = demux(raw);
    assert.equal(StatusCode, 0, `test helper failed: ${out}`);
    return out;
  } finally {
    await c.remove({ force: true });
  }
}

function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let rest = buf;
  while (rest.length >= 8) {
    const size = rest.readUInt32BE(4);
    parts.push(rest.subarray(8, 8 + size));
    rest = rest.subarray(8 + size);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Watch a job and collect its lines. */
export async function watchLines(substrate: ContainerSubstrate, ref: string): Promise<{ result: StepResult; lines: string[] }> {
  const lines: string[] = [];
  const result = await substrate.watch(ref, (line) => lines.push(line));
  return { result, lines };
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
