import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDemuxer, JobLog } from '../../../src/substrates/container/job-log.ts';
import type { JobLogBound } from '../../../src/substrates/container/job-log.ts';
import { ContainerSubstrate } from '../../../src/substrates/container/container-substrate.ts';
import { SOCKET_PATH, TEST_IMAGE, usePodman, watchLines } from './support/podman-fixture.ts';

const LIMIT = 4096;
const podman = usePodman({ logLimit: LIMIT });

function frame(stream: number, data: Buffer | string): Buffer {
  const body = Buffer.from(data);
  const head = Buffer.alloc(8);
  head.writeUInt8(stream, 0);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** Every line 16 bytes with its newline. */
function line(i: number): string {
  return `line ${String(i).padStart(10, '0')}\n`;
}

function inTempDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-job-log-bound-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Feeds frames through a JobLog as a (re-)attached watch does; returns the lines given to onLine. */
function feed(logPath: string, logStart: number, output: Buffer, chunk: number, bound: JobLogBound, close = true): string[] {
  const lines: string[] = [];
  const log = new JobLog(logPath, logStart, (l) => lines.push(l), bound);
  const demux = new FrameDemuxer((s, d) => log.push(s, d));
  for (let i = 0; i < output.length; i += chunk) demux.push(output.subarray(i, i + chunk));
  if (close) log.close();
  else log.abandon();
  return lines;
}

// 200 lines of 16 bytes (3200 bytes); a checkpoint at line 50 (middle) and one at line 190 (tail).
const CHECKPOINT_MIDDLE = '::ferry::checkpoint row-50\n';
const CHECKPOINT_TAIL = '::ferry::checkpoint row-190\n';
function bigOutput(): { output: Buffer; text: string[] } {
  const text: string[] = [];
  for (let i = 1; i <= 200; i++) {
    if (i === 50) text.push(CHECKPOINT_MIDDLE);
    if (i === 190) text.push(CHECKPOINT_TAIL);
    text.push(line(i));
  }
  return { output: Buffer.concat(text.map((t) => frame(1, t))), text };
}

void test('past logLimit the log keeps the head as it came, the dropped middle ::ferry:: lines, one line saying what was dropped, then the tail', () => {
  inTempDir((dir) => {
    const logPath = join(dir, 'attempt.log');
    const { output, text } = bigOutput();
    const lines = feed(logPath, 0, output, 7, { limit: 1024 });
    const file = readFileSync(logPath, 'utf8');

    // Head: the first 512 bytes, whole lines: 32 lines of 16 bytes.
    const head = text.slice(0, 32).join('');
    // Tail: the whole lines within the last 512 bytes.
    const tailLines: string[] = [];
    let size = 0;
    for (let i = text.length - 1; i >= 0; i--) {
      const t = text[i]!;
      if (size + t.length > 512) break;
      size += t.length;
      tailLines.unshift(t);
    }
    const tail = tailLines.join('');
    assert.ok(tail.includes(CHECKPOINT_TAIL), 'the tail checkpoint is in the ring (test setup)');
    const total = text.join('').length;
    const dropped = total - head.length - tail.length - CHECKPOINT_MIDDLE.length;
    assert.equal(
      file,
      head +
        CHECKPOINT_MIDDLE +
        `── ferry: ${dropped} bytes of this step's output dropped here; the log keeps the first 512 and the last 512 bytes of each step (logLimit 1024) ──\n` +
        tail,
    );
    assert.equal(file.split(CHECKPOINT_TAIL).length, 2, 'a ::ferry:: line that ends in the tail is written once');
    // onLine: every line of the head, then every ::ferry:: line as it came; other lines past the head are not passed.
    assert.deepEqual(lines, [...text.slice(0, 32).map((t) => t.slice(0, -1)), CHECKPOINT_MIDDLE.slice(0, -1), CHECKPOINT_TAIL.slice(0, -1)]);
  });
});

void test('an output within logLimit is kept byte for byte, ::ferry:: lines included, with no dropped line', () => {
  inTempDir((dir) => {
    const logPath = join(dir, 'attempt.log');
    // 124 bytes for a limit of 128: a head of 64 (lines 1-4), the rest in the ring; nothing dropped.
    const text = [line(1), line(2), line(3), line(4), '::ferry::progress 1/2\n', line(5), 'no newline at the end'];
    const lines = feed(logPath, 0, Buffer.concat(text.map((t) => frame(1, t))), 5, { limit: 128 });
    assert.equal(readFileSync(logPath, 'utf8'), text.join('') + '\n');
    assert.deepEqual(lines, [1, 2, 3, 4].map((i) => line(i).trim()).concat('::ferry::progress 1/2'), 'head lines, then ::ferry:: lines');
  });
});

void test('a ::ferry:: line is cut to 4 KiB, and past the signal budget only the latest checkpoint and progress are kept, before the end line', () => {
  inTempDir((dir) => {
    const logPath = join(dir, 'attempt.log');
    const longCheckpoint = `::ferry::checkpoint ${'x'.repeat(10_000)}\n`;
    const text: string[] = [];
    for (let i = 1; i <= 40; i++) text.push(line(i)); // head (320 bytes of 512) and more
    text.push(longCheckpoint);
    for (let i = 1; i <= 30; i++) text.push(`::ferry::checkpoint c${i}\n`, `::ferry::progress ${i}/30\n`, line(100 + i));
    for (let i = 200; i <= 260; i++) text.push(line(i)); // pushes everything above out of the ring
    const lines = feed(logPath, 0, Buffer.concat(text.map((t) => frame(1, t))), 4096, { limit: 1024, signalBudget: 4097 + 100 });
    const file = readFileSync(logPath, 'utf8');

    const cut = longCheckpoint.slice(0, 4096);
    assert.equal(lines.filter((l) => l.startsWith('::ferry::checkpoint x')).length, 1);
    assert.equal(
      lines.find((l) => l.startsWith('::ferry::checkpoint x')),
      cut,
      'onLine gets the cut line',
    );
    assert.ok(file.includes(`${cut}\n`), 'the log gets the cut line');
    assert.ok(!file.includes('x'.repeat(4097)));
    // Every checkpoint and progress still reaches onLine.
    assert.equal(lines.filter((l) => /^::ferry::checkpoint c\d+$/.test(l)).length, 30);
    assert.equal(lines.filter((l) => /^::ferry::progress \d+\/30$/.test(l)).length, 30);
    // The log: the budget (4097 + 100 bytes) holds the cut line and the first few short ones, then only the latest.
    const written = file.match(/^::ferry::(checkpoint c|progress )\d+.*$/gm) ?? [];
    assert.deepEqual(written, [
      '::ferry::checkpoint c1',
      '::ferry::progress 1/30',
      '::ferry::checkpoint c2',
      '::ferry::progress 2/30',
      '::ferry::checkpoint c30',
      '::ferry::progress 30/30',
    ]);
    const end = file.indexOf('── ferry:');
    assert.ok(file.indexOf('::ferry::checkpoint c30') < end && file.indexOf('::ferry::progress 30/30') < end, 'the latest are written before the end line');
    assert.match(
      file,
      /── ferry: \d+ bytes of this step's output dropped here, 56 ::ferry:: lines among them \(past the 4197 bytes of such lines kept; the latest checkpoint and progress are just above\)/,
    );
    assert.ok(file.endsWith(line(260)));
  });
});

void test('a line without newline is cut every 64 KiB, so a job printing none is never buffered whole', () => {
  inTempDir((dir) => {
    const logPath = join(dir, 'attempt.log');
    const endless = Buffer.alloc(200 * 1024, 'a');
    const lines = feed(logPath, 0, frame(1, endless), 1000, { limit: 1024 * 1024 });
    assert.deepEqual(
      lines.map((l) => l.length),
      [65536, 65536, 65536, 8192],
    );
    assert.equal(readFileSync(logPath).length, endless.length + 4, 'each piece gets a newline');
  });
});

void test('a bounded log is completed exactly by a replay after a crash at any point, and onLine gets each line once', () => {
  inTempDir((dir) => {
    const logPath = join(dir, 'attempt.log');
    const { output } = bigOutput();
    const bound = { limit: 1024 };
    writeFileSync(logPath, 'earlier\n');
    const expectedLines = feed(logPath, 8, output, 1000, bound);
    const full = readFileSync(logPath);
    for (let written = 8; written <= full.length; written += 7) {
      for (const chunk of [3, 1000]) {
        writeFileSync(logPath, full.subarray(0, written));
        // A first watch saw part of the output, then was abandoned (the runner stopped).
        const seen = feed(logPath, 8, output.subarray(0, Math.floor(output.length / 3)), chunk, bound, false);
        const delivered = seen.length;
        let replayed = 0;
        const replay = new JobLog(
          logPath,
          8,
          (l) => {
            if (++replayed > delivered) seen.push(l);
          },
          bound,
        );
        new FrameDemuxer((s, d) => replay.push(s, d)).push(output);
        replay.close();
        assert.equal(readFileSync(logPath, 'utf8'), full.toString('utf8'), `file (written ${written}, chunk ${chunk})`);
        assert.deepEqual(seen, expectedLines, `lines (written ${written}, chunk ${chunk})`);
      }
    }
  });
});

void test('a real job over logLimit: the attempt log stays bounded, the checkpoint from the middle reaches onLine and the log, and a runner with another logLimit completes it the same', async (t) => {
  const env = await podman.require(t);
  if (!env) return;
  const spec = env.spec(await env.tenant(), {
    argv: [
      'sh',
      '-c',
      'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "output line $i"; [ $i = 1500 ] && echo "::ferry::checkpoint row-1500"; done; echo "::ferry::progress 3000/3000"; echo last',
    ],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.equal(result.cause, null, result.detail);
  assert.ok(lines.includes('::ferry::checkpoint row-1500'), 'the middle checkpoint reached onLine');
  assert.ok(lines.includes('::ferry::progress 3000/3000'));
  assert.ok(!lines.includes('output line 1500'), 'ordinary lines past the head are not passed on');

  const log = env.readLog(spec);
  const total =
    Array.from({ length: 3000 }, (_, i) => `output line ${i + 1}\n`).join('').length +
    '::ferry::checkpoint row-1500\n::ferry::progress 3000/3000\nlast\n'.length;
  assert.ok(total > 10 * LIMIT, 'the job printed well over the limit (test setup)');
  assert.ok(Buffer.byteLength(log) < LIMIT + 400, `log of ${Buffer.byteLength(log)} bytes for a limit of ${LIMIT}`);
  assert.ok(log.startsWith('output line 1\n'));
  assert.ok(log.endsWith('::ferry::progress 3000/3000\nlast\n'));
  assert.match(
    log,
    /::ferry::checkpoint row-1500\n[^]*── ferry: \d+ bytes of this step's output dropped here; the log keeps the first 2048 and the last 2048 bytes of each step \(logLimit 4096\) ──\n/,
  );
  const info = await env.docker.getContainer(ref).inspect();
  assert.equal(info.Config.Labels['ferry.log-limit'], String(LIMIT));

  // A runner restarted with another logLimit: the step's own limit (its label) decides, so the log is unchanged.
  const other = new ContainerSubstrate({ socketPath: SOCKET_PATH, dataDir: join(env.dir, 'data'), defaultImage: TEST_IMAGE, logLimit: 1024 * 1024 });
  await other.init();
  const again = await watchLines(other, ref);
  await other.close();
  assert.equal(again.result.cause, null);
  assert.equal(env.readLog(spec), log);
  await env.cleanup(spec, ref);
});
