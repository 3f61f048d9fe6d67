/**
 * A job's output is bounded per step (`logLimit`): the first half as it comes, the last half at
 * the end after a line saying how many bytes were dropped, and the `::ferry::` lines of the dropped
 * middle still reach the log (and the watcher) as they come.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { processKit } from './process-kit.ts';

const LIMIT = 64 * 1024;
const LINES = 2000;
/** Lines of 100 bytes, so the head ends mid-line; markers at lines 10 (head), 1000 and 1500 (middle), 1990 (tail). */
const MARKERS = new Map([
  [10, '::ferry::progress 1/4'],
  [1000, '::ferry::checkpoint middle-1000'],
  [1500, '::ferry::progress 3/4'],
  [1990, '::ferry::checkpoint last'],
]);

function plainLine(i: number): string {
  const text = `line ${String(i).padStart(5, '0')} `;
  return `${text}${'x'.repeat(99 - text.length)}\n`;
}

/** What the job writes, built the same way here. */
function output(): string {
  let out = '';
  for (let i = 1; i <= LINES; i++) {
    out += plainLine(i);
    const marker = MARKERS.get(i);
    if (marker) out += `${marker}\n`;
  }
  return out;
}

void test('a job writing three times its log limit leaves head, a dropped note, its ::ferry:: lines and the tail', { timeout: 60_000 }, async () => {
  const kit = await processKit({ logLimit: LIMIT });
  try {
    const expected = output();
    assert.ok(expected.length > 3 * LIMIT);
    // awk writes exactly the lines above (no shell loop: thousands of forks would slow the test down).
    const awk = String.raw`BEGIN {
      m[10] = "::ferry::progress 1/4"; m[1000] = "::ferry::checkpoint middle-1000"; m[1500] = "::ferry::progress 3/4"; m[1990] = "::ferry::checkpoint last";
      x = sprintf("%099d", 0); gsub(/0/, "x", x);
      for (i = 1; i <= ${LINES}; i++) { t = sprintf("line %05d ", i); print t substr(x, 1, 99 - length(t)); if (i in m) print m[i] }
    }`;
    const { spec, ref } = kit.step(['awk', awk]);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const lines: string[] = [];
    const result = await kit.substrate.watch(ref, (line) => lines.push(line));
    assert.equal(result.cause, null, result.detail);

    const log = readFileSync(spec.logPath, 'utf8');
    const head = expected.slice(0, LIMIT / 2);
    assert.ok(log.startsWith(`${head}\n`), 'the head is not the first half of the limit, ended by a newline');
    const rest = expected.slice(LIMIT / 2);
    const cut = rest.indexOf('\n') + 1;
    const restLines = rest.slice(cut).split(/(?<=\n)/);
    const middleMarkers = restLines.filter((l) => l.startsWith('::ferry::'));
    const plain = rest.slice(0, cut) + restLines.filter((l) => !l.startsWith('::ferry::')).join('');
    const kept = plain.slice(-LIMIT / 2);
    const tail = kept.slice(kept.indexOf('\n') + 1);
    const dropped = expected.length - head.length - middleMarkers.join('').length - tail.length;
    const note = new RegExp(`^── ferry: ${dropped} bytes of this step's output were dropped here \\(log limit ${LIMIT} bytes per step.*──\\n`);

    const after = log.slice(head.length + 1);
    assert.equal(after.slice(0, middleMarkers.join('').length), middleMarkers.join(''), 'the ::ferry:: lines past the head are not next');
    const end = after.slice(middleMarkers.join('').length);
    assert.match(end, note);
    assert.equal(end.slice(end.indexOf('\n') + 1), tail, 'the tail is not the last half of the limit from its first full line');
    assert.ok(log.length < LIMIT + 1024, `the log holds ${log.length} bytes for a limit of ${LIMIT}`);

    // Every ::ferry:: line reached the watcher, in order.
    assert.deepEqual(lines, [...MARKERS.values()]);
  } finally {
    await kit.cleanup();
  }
});

void test('output under the limit reaches the log whole, without a note', { timeout: 30_000 }, async () => {
  const kit = await processKit({ logLimit: LIMIT });
  try {
    const { spec, ref } = kit.step(['sh', '-c', 'echo one; echo two >&2; printf three']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    assert.equal((await kit.substrate.watch(ref, () => undefined)).cause, null);
    assert.equal(readFileSync(spec.logPath, 'utf8'), 'one\ntwo\nthree');
  } finally {
    await kit.cleanup();
  }
});

void test(
  '::ferry:: lines past the head are cut to 4 KiB, and past 1 MiB of them only the latest checkpoint and progress are kept',
  { timeout: 60_000 },
  async () => {
    const kit = await processKit({ logLimit: LIMIT });
    try {
      // 40,000 lines of ~100 bytes: about 4 MiB of checkpoints and progress after a long one.
      const awk = String.raw`BEGIN {
      x = sprintf("%0100d", 0); gsub(/0/, "x", x);
      for (i = 1; i <= 700; i++) print "plain " x;
      long = "::ferry::checkpoint long-"; for (j = 0; j < 100; j++) long = long x; print long;
      for (i = 1; i <= 20000; i++) { printf "::ferry::checkpoint c%05d %s\n", i, x; printf "::ferry::progress %d/20000 %s\n", i, x }
      print "plain last";
    }`;
      const { spec, ref } = kit.step(['awk', awk]);
      await kit.substrate.createScratch(spec.scratchRef, spec);
      await kit.substrate.start(spec, ref);
      const lines: string[] = [];
      assert.equal((await kit.substrate.watch(ref, (line) => lines.push(line))).cause, null);
      const log = readFileSync(spec.logPath, 'utf8');
      const markers = log.split('\n').filter((l) => l.startsWith('::ferry::'));
      const long = markers.find((l) => l.startsWith('::ferry::checkpoint long-'));
      assert.equal(long?.length, 4095, 'a ::ferry:: line past the head was not cut to 4 KiB (with its newline)');
      const markerBytes = markers.reduce((sum, l) => sum + l.length + 1, 0);
      assert.ok(markerBytes <= 1024 * 1024 + 2 * 4096, `${markerBytes} bytes of ::ferry:: lines kept`);
      // The latest of each, just before the tail, so a resume starts from the last checkpoint.
      const x = 'x'.repeat(100);
      assert.deepEqual(markers.slice(-2), [`::ferry::checkpoint c20000 ${x}`, `::ferry::progress 20000/20000 ${x}`]);
      assert.match(log, /dropped here[^\n]*\n::ferry::checkpoint c20000 x+\n::ferry::progress 20000\/20000 x+\n/);
      assert.ok(log.endsWith('plain last\n'));
      assert.deepEqual(lines.slice(-2), markers.slice(-2));
      assert.ok(log.length < LIMIT + 1024 * 1024 + 16 * 1024, `the log holds ${log.length} bytes`);
    } finally {
      await kit.cleanup();
    }
  },
);
