/**
 * Bearer tokens with roles: `filer` (file, check, read) ⊂ `operator` (approve, act, cancel, close
 * issues) ⊂ `admin` (tenants). Tokens are kept as SHA-256 digests; the admin token of an embedded
 * install is written to <dataDir>/token (mode 0600) on first start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';

export const ROLES = ['filer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  readonly name: string;
  readonly role: Role;
}

const tokensFileSchema = z.strictObject({
  tokens: z.array(
    z
      .strictObject({
        name: z.string().min(1).max(100),
        role: z.enum(ROLES),
        token: z.string().min(16).optional(),
        sha256: z.string().regex(/^[a-f0-9]{64}$/).optional(),
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
      throw new FerryError('FERRY_UNAUTHENTICATED', 'this endpoint needs a token: send Authorization: Bearer <token> (the admin token of an embedded install is in <data-dir>/token)');
    }
    const principal = this.byDigest.get(digest(match[1] as string));
    if (!principal) throw new FerryError('FERRY_UNAUTHENTICATED', 'the token is not known to this Ferry; check FERRY_TOKEN or the tokens file');
    return principal;
  }
}

export function requireRole(principal: Principal, needed: Role): void {
  if (ROLES.indexOf(principal.role) < ROLES.indexOf(needed)) {
    throw new FerryError('FERRY_FORBIDDEN', `${principal.name} has role ${principal.role}; this needs ${needed} or above`, { role: principal.role, needed });
  }
}

/** Load <dataDir>/token (creating it on first start) and the optional tokens file. */
export function loadTokens(dataDir: string, tokensFile: string | null): TokenRegistry {
  const registry = new TokenRegistry();
  const path = join(dataDir, 'token');
  if (!existsSync(path)) writeFileSync(path, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  registry.add(readFileSync(path, 'utf8').trim(), { name: 'admin', role: 'admin' });
  if (tokensFile) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(tokensFile, 'utf8'));
    } catch (err) {
      throw new FerryError('FERRY_INVALID_REQUEST', `tokens file ${tokensFile} cannot be read: ${(err as Error).message}`);
    }
    const result = tokensFileSchema.safeParse(parsed);
    if (!result.success) {
      throw new FerryError('FERRY_INVALID_REQUEST', `tokens file ${tokensFile}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    for (const t of result.data.tokens) {
      if (t.token) registry.add(t.token, { name: t.name, role: t.role });
      else if (t.sha256) registry.addDigest(t.sha256, { name: t.name, role: t.role });
    }
  }
  return registry;
}
