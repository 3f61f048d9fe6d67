/** A job's log is read many times while it runs: the tail keeps one read buffer, not one per read. */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { LogTail } from '../../../src/substrates/process/log-tail.ts';
import { removeDir, tempDir } from '../../support/harness.ts';

void test('twenty reads of a growing log allocate one read buffer and hand out every ::ferry:: line', async () => {
  const dir = tempDir('ferry-logtail-');
  const allocUnsafe = mock.method(Buffer, 'allocUnsafe');
  try {
    const log = join(dir, 'attempt.log');
    writeFileSync(log, '');
    const lines: string[] = [];
    const tail = new LogTail(log, 0, (line) => lines.push(line));
    for (let i = 0; i < 20; i++) {
      appendFileSync(log, `plain output ${i}\n::ferry::progress ${i}/20\n`);
      assert.equal(await tail.read(), true);
    }
    assert.equal(await tail.read(true), false);
    const big = allocUnsafe.mock.calls.filter((c) => (c.arguments[0] as number) >= 4096);
    assert.equal(big.length, 1, `read buffers allocated: ${big.map((c) => c.arguments[0]).join(', ')}`);
    assert.deepEqual(
      lines,
      Array.from({ length: 20 }, (_, i) => `::ferry::progress ${i}/20`),
    );
  } finally {
    allocUnsafe.mock.restore();
    removeDir(dir);
  }
});

void test('a log that outgrows the first buffer is read whole through one larger buffer', async () => {
  const dir = tempDir('ferry-logtail-');
  try {
    const log = join(dir, 'attempt.log');
    const filler = `${'x'.repeat(127)}\n`.repeat(8192); // 1 MiB
    writeFileSync(log, `${filler}::ferry::checkpoint a\n${filler}${filler}::ferry::checkpoint b\n`);
    const lines: string[] = [];
    const tail = new LogTail(log, 0, (line) => lines.push(line));
    await tail.read(true);
    assert.deepEqual(lines, ['::ferry::checkpoint a', '::ferry::checkpoint b']);
  } finally {
    removeDir(dir);
  }
});
