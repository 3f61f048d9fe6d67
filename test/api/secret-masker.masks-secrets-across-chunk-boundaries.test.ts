/**
 * The log masker hides every secret value however the log is cut into chunks: it holds back up to
 * (longest secret - 1) bytes at a chunk boundary, and shows the same text as masking the whole log.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SecretMasker } from '../../src/api/secret-masker.ts';

function run(secrets: string[], chunks: Buffer[]): string {
  const masker = new SecretMasker(secrets);
  const out = chunks.map((c) => masker.push(c));
  out.push(masker.flush());
  return Buffer.concat(out).toString('utf8');
}

/** Cut `text` (as UTF-8 bytes) at the given points, possibly inside a character. */
function cut(text: string, points: number[]): Buffer[] {
  const bytes = Buffer.from(text);
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

void describe('secret masker', () => {
  void test('a secret split over two chunks is masked', () => {
    assert.equal(run(['hunter2-password'], [Buffer.from('pw=hunter2-pa'), Buffer.from('ssword done\n')]), 'pw=(secret) done\n');
    assert.equal(run(['s3cr3t'], [Buffer.from('s'), Buffer.from('3'), Buffer.from('cr3'), Buffer.from('t!')]), '(secret)!');
  });

  void test('text that only starts like a secret is shown whole at the end', () => {
    assert.equal(run(['abcdef'], [Buffer.from('xx abc')]), 'xx abc');
  });

  void test('without secrets the text passes unchanged', () => {
    assert.equal(run([], [Buffer.from('a'), Buffer.from('b')]), 'ab');
  });

  void test('property: no secret survives, and the cut never changes the text shown', () => {
    const alphabet = fc.constantFrom(...'xyz0129é'.split(''));
    const secret = fc.array(alphabet, { minLength: 1, maxLength: 12 }).map((a) => a.join(''));
    fc.assert(
      fc.property(
        fc.array(secret, { minLength: 1, maxLength: 4 }),
        fc.array(
          fc.oneof(
            fc.array(alphabet, { maxLength: 10 }).map((a) => a.join('')),
            fc.nat(3),
          ),
          { maxLength: 30 },
        ),
        fc.array(fc.nat(400), { maxLength: 20 }),
        (secrets, parts, points) => {
          const text = parts.map((p) => (typeof p === 'number' ? (secrets[p % secrets.length] as string) : p)).join(' ');
          const whole = run(secrets, [Buffer.from(text)]);
          const shown = run(secrets, cut(text, points));
          assert.equal(shown, whole);
          for (const s of secrets) assert.ok(!shown.includes(s) || !whole.includes(s), 'masked the same way whole or cut');
          // Every occurrence of a secret in the input is replaced: what is left has none of them.
          for (const s of secrets) assert.ok(!shown.split('(secret)').some((piece) => piece.includes(s)), `${JSON.stringify(s)} in ${JSON.stringify(shown)}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});
