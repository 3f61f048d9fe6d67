/**
 * A real single-node Docker swarm for the swarm substrate's tests (scripts/setup-swarm.sh): one
 * substrate per test file, tenant volumes made and removed here, and an afterEach that fails when a
 * test leaves any Ferry-labelled service or volume of its migrations behind.
 *
 * Without the swarm (its socket, swarm mode, the test image), a test is skipped loudly when run by
 * hand; with CI=true it fails (scripts/setup-tests.sh starts the swarm).
 */
import { after, afterEach } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { SwarmSubstrate } from '../../../../src/substrates/swarm/swarm-substrate.ts';
import type { SwarmSubstrateOptions } from '../../../../src/substrates/swarm/swarm-substrate.ts';
import type { StepResult, StepSpec } from '../../../../src/substrates/substrate.ts';
import type { Tenant } from '../../../../src/core/types.ts';

export const SWARM_SOCKET = process.env['FERRY_TEST_SWARM_SOCKET'] ?? '/run/ferry-swarm/docker.sock';
export const TEST_IMAGE = 'localhost/ferry-test:1';
const MiB = 1024 * 1024;
const FIRST_TEST_UID = 200_300;

/** null when the swarm tests may run here, else why not (said loudly by the caller). */
export async function swarmUnavailable(docker: Docker): Promise<string | null> {
  try {
    const info = (await Promise.race([
      docker.info(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 3 s')), 3000).unref()),
    ])) as { Swarm?: { LocalNodeState?: string } };
    if (info.Swarm?.LocalNodeState !== 'active') return `the engine at ${SWARM_SOCKET} is not in a swarm; run scripts/setup-swarm.sh`;
    await docker.getImage(TEST_IMAGE).inspect();
    return null;
  } catch (err) {
    return `swarm engine not usable at ${SWARM_SOCKET} (${(err as Error).message}); run scripts/setup-swarm.sh`;
  }
}

export interface SwarmEnv {
  readonly substrate: SwarmSubstrate;
  readonly docker: Docker;
  readonly dir: string;
  tenant(): Promise<Tenant>;
  spec(tenant: Tenant, overrides?: Partial<StepSpec>): StepSpec;
  prepare(spec: StepSpec): Promise<void>;
  restartedSubstrate(): Promise<SwarmSubstrate>;
  /** Run a shell script as root with the volume at /v (a plain container on the node's engine). */
  asRoot(volume: string, script: string): Promise<string>;
  readLog(spec: StepSpec): string;
  cleanup(spec: StepSpec, ref: string): Promise<void>;
}

export function useSwarm(options: Partial<SwarmSubstrateOptions> = {}): { require(t: TestContext): Promise<SwarmEnv | null> } {
  const docker = new Docker({ socketPath: SWARM_SOCKET });
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const migrationIds = new Set<string>();
  const tenantVolumes: string[] = [];
  const substrates: SwarmSubstrate[] = [];
  let env: SwarmEnv | null = null;
  let dir: string | null = null;
  let counter = 0;

  const make = async (d: string): Promise<SwarmSubstrate> => {
    const s = new SwarmSubstrate({
      socketPath: SWARM_SOCKET,
      dataDir: join(d, 'data'),
      defaultImage: TEST_IMAGE,
      stopGraceSeconds: 1,
      pollMs: 100,
      ...options,
    });
    await s.init();
    substrates.push(s);
    return s;
  };

  afterEach(async () => {
    if (!env) return;
    const leaked = (await env.substrate.listLabelled()).filter((o) => migrationIds.has(o.migrationId));
    for (const o of leaked) if (o.kind === 'job') await env.substrate.remove('job', o.ref).catch(() => undefined);
    for (const o of leaked) if (o.kind !== 'job') await env.substrate.remove(o.kind, o.ref).catch(() => undefined);
    assert.deepEqual(leaked, [], 'the test left Ferry-labelled services or volumes behind');
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

  const asRoot = async (volume: string, script: string): Promise<string> => {
    const c = await docker.createContainer({
      Image: TEST_IMAGE,
      Entrypoint: ['sh'],
      Cmd: ['-c', script],
      User: '0:0',
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/v' }] },
    });
    try {
      await c.start();
      const { StatusCode } = (await c.wait()) as { StatusCode: number };
      const raw = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      const out: Buffer[] = [];
      for (let i = 0; i + 8 <= raw.length;) {
        const n = raw.readUInt32BE(i + 4);
        out.push(raw.subarray(i + 8, i + 8 + n));
        i += 8 + n;
      }
      const text = Buffer.concat(out).toString('utf8');
      if (StatusCode !== 0) throw new Error(`helper exited ${StatusCode}: ${text}`);
      return text;
    } finally {
      await c.remove({ force: true });
    }
  };

  return {
    async require(t) {
      const why = await swarmUnavailable(docker);
      if (why !== null) {
        if (process.env['CI'] === 'true') assert.fail(why);
        console.error(`\n!!! SKIPPED swarm substrate test: ${why}\n`);
        t.skip(why);
        return null;
      }
      if (env) return env;
      const d = mkdtempSync(join(tmpdir(), 'ferry-swarm-test-'));
      dir = d;
      const substrate = await make(d);
      const built: SwarmEnv = {
        substrate,
        docker,
        dir: d,
        async tenant() {
          const n = ++counter;
          const id = `${prefix}-tenant${n}`;
          const volume = `ferry-test-${id}`;
          await docker.createVolume({ Name: volume, Labels: { 'ferry-test': 'tenant-data' } });
          tenantVolumes.push(volume);
          await asRoot(volume, `mkdir -p /v/sub && echo "hello ${id}" > /v/a.txt && echo nested > /v/sub/b.txt && echo hidden > /v/.dot`);
          const tenant: Tenant = {
            id,
            steadyState: { cpu: 500, memory: 64 * MiB },
            data: volume,
            runAs: { uid: FIRST_TEST_UID + n, gid: FIRST_TEST_UID + n },
            allowRoot: false,
          };
          await substrate.adoptTenantData(tenant);
          return tenant;
        },
        spec(tenant, overrides = {}) {
          const migrationId = overrides.migrationId ?? `${prefix}-m${++counter}`;
          migrationIds.add(migrationId);
          return {
            migrationId,
            issue: 'github:acme/platform#913',
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
        asRoot,
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
      return built;
    },
  };
}

export async function watchLines(substrate: SwarmSubstrate, ref: string): Promise<{ result: StepResult; lines: string[] }> {
  const lines: string[] = [];
  const result = await substrate.watch(ref, (l) => lines.push(l));
  return { result, lines };
}
