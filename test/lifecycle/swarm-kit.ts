/**
 * The swarm substrate for the shared lifecycle suite: a real single-node Docker swarm whose manager
 * answers at /run/ferry-swarm/docker.sock (scripts/setup-swarm.sh). Tenant volumes live on that
 * node; the test reads and writes them through their mountpoints on this host.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ferry } from '../support/harness.ts';
import { pings } from './container-kit.ts';
import type { SubstrateKit } from './substrate-kit.ts';

export const SWARM_SOCKET = process.env.FERRY_TEST_SWARM_SOCKET ?? '/run/ferry-swarm/docker.sock';
const IMAGE = 'localhost/ferry-test:1';
/** Debian's client (a docker CLI in /usr/local/bin may be another one). */
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

function docker(...args: string[]): string {
  return execFileSync(DOCKER, ['-H', `unix://${SWARM_SOCKET}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function volumeName(ferry: Ferry, tenantId: string): string {
  return `ferry-test-${ferry.dataDir.split('-').at(-1)!.toLowerCase()}-${tenantId}`;
}

function mountpoint(ferry: Ferry, tenantId: string): string {
  return docker('volume', 'inspect', '--format', '{{.Mountpoint}}', volumeName(ferry, tenantId));
}

function volumeExists(name: string): boolean {
  try {
    docker('volume', 'inspect', name);
    return true;
  } catch {
    return false;
  }
}

export const swarmKit: SubstrateKit = {
  name: 'swarm',
  async available() {
    try {
      if (!(await pings(SWARM_SOCKET))) return `the swarm manager's socket ${SWARM_SOCKET} does not answer; run scripts/setup-swarm.sh`;
      if (docker('info', '--format', '{{.Swarm.LocalNodeState}}') !== 'active')
        return `the engine at ${SWARM_SOCKET} is not in a swarm; run scripts/setup-swarm.sh`;
      docker('image', 'inspect', IMAGE);
      return null;
    } catch (err) {
      return `docker or the image ${IMAGE} is missing on the swarm engine (${(err as Error).message.split('\n')[0]}); run scripts/setup-swarm.sh`;
    }
  },
  options: () => ({ substrate: 'swarm', dockerSocket: SWARM_SOCKET, defaultImage: IMAGE }),
  tenantData: (tenantId, ferry) => volumeName(ferry, tenantId),
  async prepareTenant(ferry, tenantId) {
    const name = volumeName(ferry, tenantId);
    if (!volumeExists(name)) docker('volume', 'create', name);
  },
  async readTenantFile(ferry, tenantId, name) {
    const p = join(mountpoint(ferry, tenantId), name);
    return existsSync(p) ? readFileSync(p, 'utf8') : null;
  },
  async writeTenantFile(ferry, tenantId, name, content) {
    await swarmKit.prepareTenant(ferry, tenantId);
    const root = mountpoint(ferry, tenantId);
    const file = join(root, name);
    writeFileSync(file, content);
    const owner = statSync(root);
    chownSync(file, owner.uid, owner.gid);
  },
  async listTenantFiles(ferry, tenantId) {
    return readdirSync(mountpoint(ferry, tenantId)).sort();
  },
  async leftovers(ferry) {
    const ids = new Set(((await ferry.api('GET', '/v1/migrations')).body as Array<{ id: string }>).map((m) => m.id));
    const mine = (text: string): boolean => [...ids].some((id) => text.includes(id));
    const out: string[] = [];
    for (const line of docker('service', 'ls', '--filter', 'label=ferry.role', '--format', '{{.Name}} {{.Labels}}').split('\n').filter(Boolean)) {
      if (mine(line)) out.push(`service ${line.split(' ')[0]}`);
    }
    for (const line of docker('ps', '-a', '--filter', 'label=ferry.role', '--format', '{{.Names}} {{.Labels}}').split('\n').filter(Boolean)) {
      if (mine(line)) out.push(`container ${line.split(' ')[0]}`);
    }
    for (const name of docker('volume', 'ls', '--filter', 'label=ferry.migration', '--format', '{{.Name}}').split('\n').filter(Boolean)) {
      if (mine(name)) out.push(`volume ${name}`);
    }
    const logs = join(ferry.dataDir, 'logs');
    if (existsSync(logs)) for (const entry of readdirSync(logs)) out.push(`logs/${entry}`);
    return out;
  },
  async cleanupTenant(ferry, tenantId) {
    // The tenant's adopt helper's container may still hold the volume for a moment.
    for (const id of docker('ps', '-aq', '--filter', `label=ferry.tenant=${tenantId}`).split('\n').filter(Boolean)) {
      try {
        docker('rm', '-f', id);
      } catch {
        // already gone
      }
    }
    try {
      docker('volume', 'rm', '-f', volumeName(ferry, tenantId));
    } catch {
      // already gone
    }
  },
};
