/**
 * The folders a process job writes, and who owns them: its tenant's data folder (the tenant's,
 * created when missing, never removed) and its migration's scratch. When Ferry runs as root both
 * are handed over to the tenant's `runAs` identity, which confined jobs run as
 * (docs/decisions.md, "Trust: confining jobs"); otherwise they stay Ferry's own user's.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../core/errors.ts';
import type { Identity, Tenant } from '../../core/types.ts';

const execFileAsync = promisify(execFile);

export class TenantFolders {
  /** Default home of tenants' data: `<dataDir>/tenants`. */
  private readonly tenantsRoot: string;
  /** Ferry runs as root: it can hand folders over to a tenant's identity. */
  readonly privileged: boolean;

  constructor(tenantsRoot: string, privileged: boolean) {
    this.tenantsRoot = tenantsRoot;
    this.privileged = privileged;
  }

  /** A tenant's data is a folder: its `data`, or <dataDir>/tenants/<id>. */
  dataOf(tenant: Tenant): string {
    return tenant.data || join(this.tenantsRoot, tenant.id);
  }

  dataExists(tenant: Tenant): boolean {
    return existsSync(this.dataOf(tenant));
  }

  /**
   * Hands the tenant's data folder over to its `runAs` identity: `chown -R` that never follows a
   * symbolic link, never leaves the folder's file system, and leaves hard-linked files alone (one
   * may be a file outside the folder, such as /etc/shadow linked in by an earlier job that ran as
   * root). A missing folder is created, owned by the identity, 0700.
   */
  async adoptData(tenant: Tenant): Promise<string | null> {
    const data = this.dataOf(tenant);
    const runAs = this.identityOf(tenant);
    const found = await lstat(data).catch(() => null);
    if (found === null) {
      await this.ensureData(tenant);
      return this.privileged
        ? `created ${data} for uid ${runAs.uid} gid ${runAs.gid} (mode 0700)`
        : `created ${data} (mode 0700), owned by Ferry's own user: Ferry does not run as root, so it cannot hand folders over`;
    }
    assertPlainFolder(data, found);
    if (!this.privileged) return `left ${data} with its owner: Ferry does not run as root, so it cannot hand folders over`;
    const owner = `${runAs.uid}:${runAs.gid}`;
    await execFileAsync('find', ['-P', data, '-xdev', '!', '(', '-type', 'f', '-links', '+1', ')', '-exec', 'chown', '-h', owner, '--', '{}', '+']);
    const { stdout } = await execFileAsync('find', ['-P', data, '-xdev', '-type', 'f', '-links', '+1', '-print']);
    const linked = stdout.split('\n').filter(Boolean).length;
    return (
      `handed ${data} over to uid ${runAs.uid} gid ${runAs.gid}` +
      (linked > 0
        ? `; left ${linked} hard-linked file(s) with their owner (a hard link may be a file outside the folder): check them and chown them yourself if they belong to the tenant`
        : '')
    );
  }

  /** The tenant's data folder exists: created when missing, owned by its identity, 0700. Never removed. */
  async ensureData(tenant: Tenant): Promise<void> {
    const data = this.dataOf(tenant);
    const found = await lstat(data).catch(() => null);
    if (found !== null) {
      assertPlainFolder(data, found);
      return;
    }
    await this.createOwned(data, tenant);
  }

  /** A folder of the tenant's own (its data, a migration's scratch): created 0700 and, as root, given to its identity. */
  async createOwned(path: string, tenant: Tenant): Promise<void> {
    const owner = this.privileged ? this.identityOf(tenant) : null;
    await mkdir(path, { recursive: true, mode: 0o700 });
    // Either order leaves it 0700 and the tenant's; neither opens it to anyone else meanwhile.
    await Promise.all([chmod(path, 0o700), owner ? chown(path, owner.uid, owner.gid) : undefined]);
  }

  /** The identity a tenant's jobs run as: never root, never Ferry's own user. */
  identityOf(tenant: Tenant): Identity {
    const runAs = (tenant as { runAs?: Identity }).runAs;
    const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) < 0xffffffff;
    if (!runAs || !valid(runAs.uid) || !valid(runAs.gid) || runAs.uid === process.geteuid?.()) {
      throw new FerryError(
        'FERRY_INTERNAL',
        `tenant ${tenant.id} has no identity its jobs may run as (runAs ${JSON.stringify(runAs ?? null)}): it needs a uid and gid ` +
          "other than root and other than Ferry's own; register the tenant again",
      );
    }
    return runAs;
  }
}

function assertPlainFolder(path: string, found: { isSymbolicLink(): boolean; isDirectory(): boolean }): void {
  if (found.isSymbolicLink()) {
    throw new FerryError('FERRY_INVALID_REQUEST', `the tenant's data folder ${path} is a symbolic link; give the folder's real path as its data`);
  }
  if (!found.isDirectory()) throw new FerryError('FERRY_INVALID_REQUEST', `the tenant's data ${path} is not a folder; give a folder as its data`);
}
