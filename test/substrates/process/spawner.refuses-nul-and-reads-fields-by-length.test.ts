/**
 * The spawner's frames carry lengths, not separators: a NUL byte inside a field can no longer
 * shift the fields after it (another command and environment than the one approved). The spawner
 * refuses such a field (E ID EINVAL) and runs nothing, then goes on with the next request.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeRequest } from '../../../src/substrates/process/spawner.ts';
import { removeDir, tempDir } from '../../support/harness.ts';

const SPAWNER = join(import.meta.dirname, '../../../build/ferry-spawner');

/** Sends raw frames and collects the spawner's S and E answers until `count` arrived. */
async function exchange(frames: Buffer[], count: number): Promise<string[]> {
  const child = spawn(SPAWNER, [], { stdio: ['pipe', 'pipe', 'inherit'], env: {} });
  const answers: string[] = [];
  let text = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      text += chunk;
      for (const line of text.split('\n').slice(0, -1)) if (/^[SE] /.test(line) && !answers.includes(line)) answers.push(line);
      if (answers.length >= count) resolve();
    });
    child.on('close', () => resolve());
    for (const frame of frames) child.stdin.write(frame);
  });
  child.stdin.end();
  return answers;
}

void test('a field with a NUL byte is refused with EINVAL and nothing runs; a sound request after it runs', async () => {
  const dir = tempDir('ferry-spawner-nul-');
  try {
    const cut = join(dir, 'cut');
    const sound = join(dir, 'sound');
    // As a C string this argument would end at the NUL: `touch <cut>`.
    const withNul = encodeRequest(1, 3, 0, [dir, '/usr/bin/touch', 'touch', `${cut}\0`, join(dir, 'other')]);
    const nulInEnv = encodeRequest(2, 2, 1, [dir, '/usr/bin/touch', 'touch', cut, 'A=b\0PATH=/evil']);
    const good = encodeRequest(3, 2, 0, [dir, '/usr/bin/touch', 'touch', sound]);
    const answers = await exchange([withNul, nulInEnv, good], 3);
    assert.deepEqual(answers.slice(0, 2), ['E 1 22', 'E 2 22']);
    assert.match(answers[2] ?? '', /^S 3 \d+$/);
    assert.equal(existsSync(cut), false, 'a request with a NUL byte ran');
  } finally {
    removeDir(dir);
  }
});

void test('a payload whose fields do not add up is refused, and the next frame is still read', async () => {
  const dir = tempDir('ferry-spawner-frame-');
  try {
    const lying = encodeRequest(7, 3, 0, [dir, '/usr/bin/touch', 'touch', join(dir, 'a')]); // says 3 arguments, carries 2
    const good = encodeRequest(8, 1, 0, [dir, '/usr/bin/true', 'true']);
    const answers = await exchange([lying, good], 2);
    assert.equal(answers[0], 'E 7 22');
    assert.match(answers[1] ?? '', /^S 8 \d+$/);
    assert.equal(existsSync(join(dir, 'a')), false);
  } finally {
    removeDir(dir);
  }
});
