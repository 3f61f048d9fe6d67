/**
 * Unit tests of src/api/log-followers.ts against a real file: followers of one attempt share one
 * tail, each reads the whole log at its own pace, the bounds refuse with the catalogued codes, and
 * a follower whose client stops reading is ended with a closing line and frees its place.
 */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { LogFollowers } from '../../src/api/log-followers.ts';
import { FerryError } from '../../src/core/errors.ts';
import { removeDir, tempDir, waitFor } from '../support/harness.ts';

async function readAll(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString('utf8');
  return text;
}

void describe('log followers', () => {
  const dir = tempDir('ferry-followers-');
  after(() => removeDir(dir));

  void test('followers of one attempt share one tail and each reads the whole log, masked', async () => {
    const path = join(dir, 'a.log');
    writeFileSync(path, 'one pw=hunter2\n');
    let ended = false;
    const followers = new LogFollowers({ limits: { total: 10, perToken: 5 }, attemptEnded: async () => ended, pollMs: 10 });
    const source = { migrationId: 'm-a', attempt: 1, path, secrets: ['hunter2'] };
    const streams = [followers.follow(source, 'x'), followers.follow(source, 'x'), followers.follow(source, 'y')];
    assert.equal(followers.tailCount, 1);
    assert.equal(followers.count, 3);
    const texts = Promise.all(streams.map(readAll));
    appendFileSync(path, 'two hun');
    appendFileSync(path, 'ter2 three\n');
    ended = true;
    for (const text of await texts) assert.equal(text, 'one pw=(secret)\ntwo (secret) three\n');
    await waitFor('places to be freed', () => followers.count === 0 && followers.tailCount === 0);
  });

  void test('past the bounds: 429 FERRY_TOO_MANY_FOLLOWERS per token, 503 FERRY_BUSY in total', () => {
    const path = join(dir, 'b.log');
    writeFileSync(path, '');
    const followers = new LogFollowers({ limits: { total: 3, perToken: 2 }, attemptEnded: async () => false, pollMs: 10 });
    const source = { migrationId: 'm-b', attempt: 1, path, secrets: [] };
    const open = [followers.follow(source, 'x'), followers.follow(source, 'x')];
    assert.throws(
      () => followers.follow(source, 'x'),
      (e: unknown) => e instanceof FerryError && e.code === 'FERRY_TOO_MANY_FOLLOWERS' && e.status === 429,
    );
    open.push(followers.follow(source, 'y'));
    assert.throws(
      () => followers.follow(source, 'z'),
      (e: unknown) => e instanceof FerryError && e.code === 'FERRY_BUSY' && e.status === 503,
    );
    for (const s of open) s.destroy();
    followers.close();
  });

  void test('a follower that stops reading while the log grows is ended with a closing line and frees its place', async () => {
    const path = join(dir, 'c.log');
    writeFileSync(path, 'x'.repeat(1024 * 1024));
    const followers = new LogFollowers({ limits: { total: 10, perToken: 10 }, attemptEnded: async () => false, pollMs: 10, stallMs: 50 });
    const stream = followers.follow({ migrationId: 'm-c', attempt: 1, path, secrets: [] }, 'slow');
    let dropped = false;
    stream.once('dropped', () => (dropped = true));
    stream.pause();
    stream.resume();
    stream.pause(); // never reads again: its buffer fills and stays full
    await waitFor('the stalled follower to be dropped', () => dropped);
    assert.equal(followers.count, 0, 'its place is free');
    assert.ok(stream.readableLength <= 256 * 1024, `it holds a bounded buffer, not the log: ${stream.readableLength}`);
    const text = await readAll(stream);
    assert.match(text, /\[ferry\] this follower read nothing for/);
    assert.ok(text.length < 1024 * 1024 + 500);
    followers.close();
  });
});
