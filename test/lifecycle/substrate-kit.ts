/**
 * What the shared lifecycle suite needs to know about a substrate: how to start Ferry on it, how
 * to read and write a tenant's data from outside, and what it would leave behind.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RawOptions } from '../../src/config.ts';
import type { Ferry } from '../support/harness.ts';

export interface SubstrateKit {
  readonly name: string;
  /** null when the substrate can run here; otherwise why not. */
  available(): Promise<string | null>;
  options(): RawOptions;
  /** The `data` to register a tenant with (undefined: the substrate's default). */
  tenantData(tenantId: string, ferry: Ferry): string | undefined;
  /** Make the tenant's data exist, as the platform would before a migration. */
  prepareTenant(ferry: Ferry, tenantId: string): Promise<void>;
  readTenantFile(ferry: Ferry, tenantId: string, name: string): Promise<string | null>;
  writeTenantFile(ferry: Ferry, tenantId: string, name: string, content: string): Promise<void>;
  listTenantFiles(ferry: Ferry, tenantId: string): Promise<string[]>;
  /** Everything Ferry-made still present for this Ferry (processes, containers, volumes, files). */
  leftovers(ferry: Ferry): Promise<string[]>;
  /** Remove tenant data the test created (tenant data is never Ferry's to remove). */
  cleanupTenant(ferry: Ferry, tenantId: string): Promise<void>;
}

export const processKit: SubstrateKit = {
  name: 'process',
  async available() {
    return existsSync(new URL('../../build/ferry-supervise', import.meta.url)) ? null : 'build/ferry-supervise is not built; run npm install';
  },
  options: () => ({ substrate: 'process' }),
  tenantData: () => undefined,
  async prepareTenant() {
    // the process substrate creates a missing tenant folder itself
  },
  async readTenantFile(ferry, tenantId, name) {
    const p = join(ferry.dataDir, 'tenants', tenantId, name);
    return existsSync(p) ? readFileSync(p, 'utf8') : null;
  },
  async writeTenantFile(ferry, tenantId, name, content) {
    // As the tenant's service would: the file belongs to the tenant's identity, so its jobs may change it.
    const { uid, gid } = (await ferry.api('GET', `/v1/tenants/${tenantId}`)).body.runAs as { uid: number; gid: number };
    const dir = join(ferry.dataDir, 'tenants', tenantId);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), content);
    chownSync(join(dir, name), uid, gid);
  },
  async listTenantFiles(ferry, tenantId) {
    const dir = join(ferry.dataDir, 'tenants', tenantId);
    return existsSync(dir) ? readdirSync(dir).sort() : [];
  },
  async leftovers(ferry) {
    const out: string[] = [];
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes('ferry-supervise') && cmd.includes(ferry.dataDir)) out.push(`process ${pid}: ${cmd.replaceAll('\0', ' ').slice(0, 120)}`);
      } catch {
        // gone
      }
    }
    for (const sub of ['jobs', 'scratch', 'snapshots', 'logs']) {
      const dir = join(ferry.dataDir, sub);
      if (existsSync(dir)) for (const entry of readdirSync(dir)) out.push(`${sub}/${entry}`);
    }
    return out;
  },
  async cleanupTenant() {
    // tenant folders live inside the test's data folder, removed with it
  },
};
