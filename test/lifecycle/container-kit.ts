/** The container substrate for the shared lifecycle suite: real Podman through its Docker API socket. */
import { execFileSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { chownSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ferry } from '../support/harness.ts';
import type { SubstrateKit } from './substrate-kit.ts';

const SOCKET = process.env.FERRY_TEST_DOCKER_SOCKET ?? '/run/podman/podman.sock';
const IMAGE = 'localhost/ferry-test:1';

function podman(...args: string[]): string {
  return execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Tenant volumes are named per test data folder so parallel runs never share one. */
function volumeName(ferry: Ferry, tenantId: string): string {
  return `ferry-test-${ferry.dataDir.split('-').at(-1)!.toLowerCase()}-${tenantId}`;
}

function mountpoint(ferry: Ferry, tenantId: string): string {
  return podman('volume', 'inspect', '--format', '{{.Mountpoint}}', volumeName(ferry, tenantId));
}

/** Whether a Docker Engine API answers `/_ping` on this unix socket (tests and benchmarks). */
export function pings(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest({ socketPath, path: '/_ping', timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export const containerKit: SubstrateKit = {
  name: 'container',
  async available() {
    try {
      if (!(await pings(SOCKET))) return `the Docker API socket ${SOCKET} does not answer; run .ci/setup-podman.sh`;
      podman('image', 'exists', IMAGE);
      return null;
    } catch (err) {
      return `podman or the image ${IMAGE} is missing (${(err as Error).message.split('\n')[0]}); run .ci/setup-podman.sh`;
    }
  },
  options: () => ({ substrate: 'container', dockerSocket: SOCKET, defaultImage: IMAGE }),
  tenantData: (tenantId, ferry) => volumeName(ferry, tenantId),
  async prepareTenant(ferry, tenantId) {
    const name = volumeName(ferry, tenantId);
    try {
      podman('volume', 'exists', name);
    } catch {
      podman('volume', 'create', name);
    }
  },
  async readTenantFile(ferry, tenantId, name) {
    const p = join(mountpoint(ferry, tenantId), name);
    return existsSync(p) ? readFileSync(p, 'utf8') : null;
  },
  async writeTenantFile(ferry, tenantId, name, content) {
    await containerKit.prepareTenant(ferry, tenantId);
    const root = mountpoint(ferry, tenantId);
    const file = join(root, name);
    writeFileSync(file, content);
    // As the tenant would have written it: jobs run as the tenant's identity, which owns the
    // volume once registration handed it over, and must be able to change the file.
    const owner = statSync(root);
    chownSync(file, owner.uid, owner.gid);
  },
  async listTenantFiles(ferry, tenantId) {
    return readdirSync(mountpoint(ferry, tenantId)).sort();
  },
  async leftovers(ferry) {
    const ids = new Set(((await ferry.api('GET', '/v1/migrations')).body as Array<{ id: string }>).map((m) => m.id));
    const out: string[] = [];
    const containers = podman('ps', '-a', '--filter', 'label=ferry.migration', '--format', '{{.Names}} {{.Labels}}');
    for (const line of containers.split('\n').filter(Boolean)) {
      if ([...ids].some((id) => line.includes(id))) out.push(`container ${line.split(' ')[0]}`);
    }
    const volumes = podman('volume', 'ls', '--filter', 'label=ferry.migration', '--format', '{{.Name}}');
    for (const name of volumes.split('\n').filter(Boolean)) if ([...ids].some((id) => name.includes(id))) out.push(`volume ${name}`);
    const logs = join(ferry.dataDir, 'logs');
    if (existsSync(logs)) for (const entry of readdirSync(logs)) out.push(`logs/${entry}`);
    return out;
  },
  async cleanupTenant(ferry, tenantId) {
    try {
      podman('volume', 'rm', '-f', volumeName(ferry, tenantId));
    } catch {
      // already gone
    }
  },
};
