import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDemuxer, JobLog } from '../../../src/substrates/container/job-log.ts';

function frame(stream: number, text: string): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head.writeUInt8(stream, 0);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** Replays a container's whole output into a log, as a (re-)attached watch does. */
function replay(logPath: string, logStart: number, output: Buffer, chunk: number): string[] {
  const lines: string[] = [];
  const log = new JobLog(logPath, logStart, (l) => lines.push(l));
  const demux = new FrameDemuxer((s, d) => log.push(s, d));
  for (let i = 0; i < output.length; i += chunk) demux.push(output.subarray(i, i + chunk));
  log.close();
  return lines;
}

const output = Buffer.concat([frame(1, 'one\ntw'), frame(2, 'err ü\n'), frame(1, 'o\n'), frame(1, 'three\nlast without newline')]);
const expectedLines = ['one', 'err ü', 'two', 'three', 'last without newline'];
const expectedFile = 'earlier\none\nerr ü\ntwo\nthree\nlast without newline\n';

void test('frames split anywhere become the same lines, and a re-attach after any partial write completes the log exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-job-log-'));
  try {
    const logPath = join(dir, 'logs', 'attempt.log');
    const full = Buffer.from(expectedFile);
    const logStart = Buffer.byteLength('earlier\n');
    // Every crash point: the file holds some prefix of the step's bytes (even half a line, even half a UTF-8 character).
    for (let written = logStart; written <= full.length; written++) {
      for (const chunk of [1, 5, 1000]) {
        mkdirSync(join(dir, 'logs'), { recursive: true });
        writeFileSync(logPath, full.subarray(0, written));
        const lines = replay(logPath, logStart, output, chunk);
        assert.deepEqual(lines, expectedLines, `lines (written ${written}, chunk ${chunk})`);
        assert.equal(readFileSync(logPath, 'utf8'), expectedFile, `file (written ${written}, chunk ${chunk})`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('CRLF line ends reach onLine without the CR', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-job-log-'));
  try {
    const lines = replay(join(dir, 'a.log'), 0, frame(1, 'a\r\nb\n'), 3);
    assert.deepEqual(lines, ['a', 'b']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('a follow stream that ended early is completed by a replay: missing lines once to onLine, each line once in the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-joblog-short-'));
  try {
    const logPath = join(dir, 'attempt-1.log');
    writeFileSync(logPath, 'header\n');
    const logStart = 7;
    const output = Buffer.from('one\n::ferry::checkpoint row-41\ntwo');
    const seen: string[] = [];
    // The follow stream delivered only "one\n::ferry::check" before it ended.
    const follow = new JobLog(logPath, logStart, (l) => seen.push(l));
    follow.push(1, output.subarray(0, 18));
    const delivered = follow.lines;
    follow.abandon();
    // The replay of the finished container's whole output, as the substrate does it.
    let replayed = 0;
    const replay = new JobLog(logPath, logStart, (l) => {
      if (++replayed > delivered) seen.push(l);
    });
    replay.push(1, output);
    replay.close();
    assert.deepEqual(seen, ['one', '::ferry::checkpoint row-41', 'two']);
    assert.equal(readFileSync(logPath, 'utf8'), 'header\none\n::ferry::checkpoint row-41\ntwo\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
