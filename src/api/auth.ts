/**
 * Bearer tokens with roles (src/core/roles.ts): `filer` (file, check, read) ⊂ `operator` (approve,
 * act, cancel, close issues) ⊂ `admin` (tenants). Tokens are kept as SHA-256 digests; the admin token of an embedded
 * install is written to <dataDir>/token (mode 0600) on first start.
 *
 * A token of the tokens file may be limited to tenants (`tenants: [shop, blog]`): it then sees and
 * acts on those tenants and their migrations only. Anything else answers as if it did not exist
 * (404), so that a scoped token cannot learn which other tenants or migrations there are.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { assertDocumentBounds, assertValueBounds } from '../core/document-bounds.ts';
import { FerryError } from '../core/errors.ts';
import { TENANT_ID } from '../core/request-schema.ts';
import { ROLES, roleAtLeast, type Role } from '../core/roles.ts';
import type { Store } from '../store/store.ts';

export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** The tenants this token may see and act on; `null` (the default, and the admin token): all. */
  readonly tenants: ReadonlySet<string> | null;
}

/** Whether `principal` may see or act on tenant `id`. */
export function inScope(principal: Principal, tenant: string): boolean {
  return principal.tenants === null || principal.tenants.has(tenant);
}

const tokensFileSchema = z.strictObject({
  tokens: z.array(
    z
      .strictObject({
        name: z.string().min(1).max(100),
        role: z.enum(ROLES),
        token: z.string().min(16).optional(),
        sha256: z
          .string()
          .regex(/^[a-f0-9]{64}$/)
          .optional(),
        /** Limit the token to these tenants; default: all tenants. */
        tenants: z
          .array(z.string().regex(TENANT_ID, 'is not a tenant id'))
          .min(1, 'list at least one tenant, or leave tenants out for all')
          .max(10_000)
          .optional(),
      })
      .refine((t) => (t.token === undefined) !== (t.sha256 === undefined), 'give exactly one of token or sha256'),
  ),
});

export function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class TokenRegistry {
  private readonly byDigest = new Map<string, Principal>();

  add(token: string, principal: Principal): void {
    this.byDigest.set(digest(token), principal);
  }

  addDigest(sha256: string, principal: Principal): void {
    this.byDigest.set(sha256, principal);
  }

  /** The principal of an Authorization header, or a 401. */
  authenticate(header: string | undefined): Principal {
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) {
      throw new FerryError(
        'FERRY_UNAUTHENTICATED',
        'this endpoint needs a token: send Authorization: Bearer <token> (the admin token of an embedded install is in <data-dir>/token)',
      );
    }
    const principal = this.byDigest.get(digest(match[1] as string));
    if (!principal) throw new FerryError('FERRY_UNAUTHENTICATED', 'the token is not known to this Ferry; check FERRY_TOKEN or the tokens file');
    return principal;
  }
}

/** Refuses (403) a principal below `needed`. */
export function requireRole(principal: Principal, needed: Role): void {
  if (!roleAtLeast(principal.role, needed)) {
    throw new FerryError('FERRY_FORBIDDEN', `${principal.name} has role ${principal.role}; this needs ${needed} or above`, { role: principal.role, needed });
  }
}

const ADMIN: Principal = { name: 'admin', role: 'admin', tenants: null };

/**
 * The admin token. The store keeps its digest, so that it works on every node; the node that makes
 * it (the first to start on a store) writes it to <dataDir>/token (mode 0600), and the others have
 * none in their folder (give the CLI FERRY_TOKEN there). The node that made it rotates it as before:
 * delete the file (a new token is made) or write another token into it, and restart; the old one
 * stops working (on the other nodes when they restart). A token file written before the store kept
 * the digest becomes the recorded one.
 */
export async function loadAdminToken(registry: TokenRegistry, dataDir: string, store: Store, node: string, now: Date): Promise<void> {
  const path = join(dataDir, 'token');
  const recorded = await store.adminToken();
  const maker = recorded === null || recorded.createdBy === node;
  let kept = recorded?.sha256 ?? null;
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (recorded === null) kept = await store.claimAdminToken(digest(token), node, now);
    else if (maker && recorded.sha256 !== digest(token)) {
      await store.replaceAdminToken(digest(token), node, now);
      kept = digest(token);
    }
    // A node's own token file works on it even when another node's token is the cluster's.
    registry.add(token, ADMIN);
  } else if (maker) {
    // Written before it is recorded: a crash in between leaves a file that the next start records.
    const token = randomBytes(24).toString('base64url');
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    if (recorded === null) {
      kept = await store.claimAdminToken(digest(token), node, now);
    } else {
      await store.replaceAdminToken(digest(token), node, now);
      kept = digest(token);
    }
    // Another node recorded first (both started on an empty store at once): its token is the admin token.
    if (kept === digest(token)) registry.add(token, ADMIN);
    else unlinkSync(path);
  }
  if (kept !== null) registry.addDigest(kept, ADMIN);
}

/** Load the optional tokens file. */
export function loadTokens(tokensFile: string | null): TokenRegistry {
  const registry = new TokenRegistry();
  if (tokensFile) {
    let parsed: unknown;
    try {
      const text = readFileSync(tokensFile, 'utf8');
      assertDocumentBounds(text, 'yaml');
      parsed = parseYaml(text);
      assertValueBounds(parsed);
    } catch (err) {
      throw new FerryError('FERRY_INVALID_REQUEST', `tokens file ${tokensFile} cannot be read: ${(err as Error).message}`);
    }
    const result = tokensFileSchema.safeParse(parsed);
    if (!result.success) {
      throw new FerryError(
        'FERRY_INVALID_REQUEST',
        `tokens file ${tokensFile}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    for (const t of result.data.tokens) {
      const principal: Principal = { name: t.name, role: t.role, tenants: t.tenants ? new Set(t.tenants) : null };
      if (t.token) registry.add(t.token, principal);
      else if (t.sha256) registry.addDigest(t.sha256, principal);
    }
  }
  return registry;
}
