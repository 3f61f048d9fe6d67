/**
 * Unit tests of src/api/log-followers.ts: followers of one log share its block reads (one read of
 * the file per 64 KiB block, not one per follower), yet each keeps its own pace: one that reads
 * nothing holds back no other, and one too far behind for the kept blocks reads its own and still
 * gets every byte in order, as do followers of a log that grows in uneven pieces while they read.
 * A piece of a shared block that a follower holds does not keep much more than itself in memory.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { LogFollowers } from '../../src/api/log-followers.ts';
import { removeDir, tempDir, waitFor } from '../support/harness.ts';

const KIB = 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `bytes` of numbered lines, so that a byte out of place changes the text. */
function numbered(bytes: number, from = 0): Buffer {
  let text = '';
  for (let i = from; text.length < bytes; i++) text += `${String(i).padStart(8, '0')} ${'x'.repeat(90)}\n`;
  return Buffer.from(text.slice(0, bytes));
}

void describe('log followers share block reads', () => {
  const dir = tempDir('ferry-followers-');
  after(() => removeDir(dir));

  void test('ten followers of a 1 MiB log read the file once: 16 reads of 64 KiB, not 160', async () => {
    const path = join(dir, 'a.log');
    writeFileSync(path, numbered(1024 * KIB));
    const followers = new LogFollowers({ limits: { total: 10, perToken: 10 }, attemptEnded: async () => true, pollMs: 5 });
    const source = { migrationId: 'm-a', attempt: 1, path, secrets: [] };
    const texts = await Promise.all(Array.from({ length: 10 }, () => readAll(followers.follow(source, 'x'))));
    for (const text of texts) assert.ok(text.equals(readFileSync(path)), 'every follower reads the whole log in order');
    assert.equal(followers.blockReads, 16);
    await waitFor('the tail to close and its blocks to go', () => followers.tailCount === 0 && followers.keptBlocks === 0);
  });

  void test('a follower that reads nothing holds back no other; once it reads, past the kept blocks, it still gets every byte', async () => {
    const path = join(dir, 'b.log');
    writeFileSync(path, numbered(1024 * KIB));
    const followers = new LogFollowers({ limits: { total: 10, perToken: 10 }, attemptEnded: async () => true, pollMs: 5, sharedBlocks: 4 });
    const source = { migrationId: 'm-b', attempt: 1, path, secrets: [] };
    const idle = followers.follow(source, 'x');
    const busy = await readAll(followers.follow(source, 'x'));
    assert.ok(busy.equals(readFileSync(path)), 'the reading follower finished while the other read nothing');
    assert.ok(followers.keptBlocks <= 4, `at most sharedBlocks are kept: ${followers.keptBlocks}`);
    const late = await readAll(idle);
    assert.ok(late.equals(readFileSync(path)), 'the late follower reads every byte in order');
    assert.ok(followers.blockReads > 16, `the late follower read again what was no longer kept: ${followers.blockReads} reads`);
    await waitFor('the tail to close', () => followers.tailCount === 0 && followers.keptBlocks === 0);
  });

  void test('a follower that starts inside a block (a tail) gets pieces that do not keep the whole block alive', async () => {
    const path = join(dir, 'd.log');
    writeFileSync(path, numbered(256 * KIB));
    const followers = new LogFollowers({ limits: { total: 10, perToken: 10 }, attemptEnded: async () => true, pollMs: 5 });
    const source = { migrationId: 'm-d', attempt: 1, path, secrets: [] };
    const whole = await readAll(followers.follow(source, 'x'));
    const chunks: Buffer[] = [];
    for await (const chunk of followers.follow({ ...source, from: 64 * KIB - 10 }, 'x')) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(whole.subarray(64 * KIB - 10)));
    // Node's small buffers share 8 KiB slabs; any other piece is at least half of what it keeps.
    for (const c of chunks) assert.ok(c.buffer.byteLength <= Math.max(8 * KIB, 2 * c.length), `${c.length} bytes keep ${c.buffer.byteLength} alive`);
  });

  void test('followers of a log that grows in uneven pieces, across and within blocks, each read exactly the file', async () => {
    const path = join(dir, 'c.log');
    writeFileSync(path, '');
    let ended = false;
    const followers = new LogFollowers({ limits: { total: 20, perToken: 20 }, attemptEnded: async () => ended, pollMs: 2 });
    const source = { migrationId: 'm-c', attempt: 1, path, secrets: [] };
    const texts = Promise.all(Array.from({ length: 20 }, () => readAll(followers.follow(source, 'x'))));
    let written = 0;
    for (const size of [1, 100, 64 * KIB - 101, 3, 70 * KIB, 10, 64 * KIB, 200 * KIB + 7, 5, 1]) {
      appendFileSync(path, numbered(size, written));
      written += size;
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    ended = true;
    const whole = readFileSync(path);
    assert.equal(whole.length, written);
    for (const text of await texts) assert.ok(text.equals(whole), `a follower read ${text.length} of ${whole.length} bytes, or out of order`);
    await waitFor('the places to be freed', () => followers.count === 0 && followers.tailCount === 0);
  });
});
