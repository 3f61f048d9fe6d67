/**
 * Replaces secret env values in log text as it streams. A secret may be cut across two chunks, so
 * the masker holds back the last (longest secret - 1) bytes of what it has seen until more arrives
 * or the log ends. Works on bytes (UTF-8), so a chunk that splits a character is no trouble.
 */
import { SECRET_SHOWN } from './views.ts';

const SHOWN = Buffer.from(SECRET_SHOWN);

export class SecretMasker {
  private readonly secrets: readonly Buffer[];
  private readonly holdBack: number;
  private pending: Buffer = Buffer.alloc(0);

  /** `secrets`: the values to hide; empty ones are ignored. */
  constructor(secrets: readonly string[]) {
    // Longest first: where two secrets start at the same byte, the longer one is hidden whole.
    this.secrets = [...new Set(secrets)]
      .filter((s) => s.length > 0)
      .map((s) => Buffer.from(s))
      .sort((a, b) => b.length - a.length);
    this.holdBack = Math.max(0, (this.secrets[0]?.length ?? 0) - 1);
  }

  /** Whether there is anything to hide; without secrets `push` returns its input unchanged. */
  get active(): boolean {
    return this.secrets.length > 0;
  }

  /** The masked text that can be shown now; keeps back what could be the start of a secret. */
  push(chunk: Buffer): Buffer {
    if (!this.active) return chunk;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const { out, rest } = this.mask(buf, buf.length - this.holdBack);
    this.pending = rest;
    return out;
  }

  /** The rest, masked: call once when the log has ended. */
  flush(): Buffer {
    if (!this.active) return Buffer.alloc(0);
    const { out } = this.mask(this.pending, this.pending.length);
    this.pending = Buffer.alloc(0);
    return out;
  }

  /**
   * Mask every secret that starts before `limit` (such a secret lies wholly inside `buf`, since
   * limit = length - (longest - 1)); bytes from `limit` on are returned as `rest`.
   */
  private mask(buf: Buffer, limit: number): { out: Buffer; rest: Buffer } {
    const parts: Buffer[] = [];
    let from = 0;
    const next = this.secrets.map((s) => buf.indexOf(s, 0));
    for (;;) {
      let at = -1;
      let which = -1;
      for (let k = 0; k < this.secrets.length; k++) {
        let p = next[k] as number;
        if (p !== -1 && p < from) {
          p = buf.indexOf(this.secrets[k] as Buffer, from);
          next[k] = p;
        }
        if (p !== -1 && (at === -1 || p < at)) {
          at = p;
          which = k;
        }
      }
      if (at === -1 || at >= limit) break;
      parts.push(buf.subarray(from, at), SHOWN);
      from = at + (this.secrets[which] as Buffer).length;
    }
    const cut = Math.max(from, Math.max(0, limit));
    parts.push(buf.subarray(from, cut));
    return { out: Buffer.concat(parts), rest: Buffer.from(buf.subarray(cut)) };
  }
}
