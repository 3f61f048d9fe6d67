import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admit } from '../../src/core/admission.ts';
import type { HeldFacts } from '../../src/core/recovery.ts';
import { renderClosureSummary, renderCommandRefusal, renderStatusComment, renderVerdictComment, type StatusView } from '../../src/tracker/comments.ts';
import { marker } from '../../src/tracker/markers.ts';

const GI = 1024 ** 3;
const TENANT = { id: 'shop', steadyState: { cpu: 1000, memory: GI }, data: '/srv/shop', runAs: { uid: 200000, gid: 200000 }, allowRoot: false };
const NOW = new Date('2024-05-02T10:00:00Z');

function lines(text: string): string[] {
  return text.split('\n');
}

function includesInOrder(text: string, expected: readonly string[]): void {
  const all = lines(text);
  let from = 0;
  for (const line of expected) {
    const at = all.indexOf(line, from);
    assert.ok(at !== -1, `missing line (in order): ${line}\n--- comment ---\n${text}`);
    from = at + 1;
  }
}

void test('an admitted request: a table row per dimension and the migration id it was filed as', () => {
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 1500, memory: 2 * GI }, tenant: TENANT, capacity: { cpu: 8000, memory: 16 * GI }, now: NOW });
  const text = renderVerdictComment(verdict, { migrationId: 'm-lx3k9a-00000017' });
  assert.equal(lines(text)[0], '<!-- ferry:verdict:m-lx3k9a-00000017 -->');
  includesInOrder(text, [
    '### Ferry: request admitted',
    '| Dimension | Declared peak | Steady-state | Cap (2x) | Result |',
    '|---|---|---|---|---|',
    '| cpu | 1500m | 1 | 2 | pass |',
    '| memory | 2Gi | 1Gi | 2Gi | pass |',
    'Checked at 2024-05-02T10:00:00.000Z against the steady-state of tenant `shop`.',
    'Filed as migration `m-lx3k9a-00000017`. It starts after an operator approves it with `/ferry approve`.',
  ]);
});

void test('a rejected request: failing rows say why, and every reason says how to fix it', () => {
  const verdict = admit({ tenantId: 'shop', peak: { cpu: 2000, memory: 3 * GI, gpu: 1 }, tenant: TENANT, capacity: { cpu: 8000, memory: 16 * GI }, now: NOW });
  const text = renderVerdictComment(verdict);
  assert.equal(lines(text)[0], '<!-- ferry:verdict -->');
  includesInOrder(text, [
    '### Ferry: request rejected',
    '| cpu | 2 | 1 | 2 | pass |',
    '| memory | 3Gi | 1Gi | 2Gi | **fail**: over 2x steady-state |',
    '| gpu | 1 | — | — | **fail**: no steady-state |',
    '**Why, and how to fix it:**',
    "- memory peak 3Gi exceeds 2 x steady-state 1Gi of tenant shop (cap 2Gi); lower the peak or raise the tenant's steady-state",
    "- tenant shop has no steady-state gpu, so a gpu peak cannot be admitted; declare the tenant's steady-state gpu or drop gpu from the peak",
    'Fix the request in the `ferry` block of the issue description and save the issue: Ferry checks it again.',
  ]);
  assert.doesNotMatch(text, /Filed as migration/);
});

const FACTS: HeldFacts = {
  attempts: 2,
  failedStep: 1,
  checkpoint: '1200',
  snapshotAt: null,
  hasWipeStep: true,
  stepNames: ['copy-files', 'rebuild-index'],
};

function held(overrides: Partial<StatusView> = {}): StatusView {
  return {
    migrationId: 'm-lx3k9a-00000017',
    issue: 'github:acme/platform#742',
    tenant: 'shop',
    state: 'held',
    attempt: 2,
    steps: FACTS.stepNames,
    progress: { done: 1200, total: 5000 },
    updatedAt: '2024-05-02T11:00:00Z',
    held: { cause: 'exit-code', detail: 'exit code 3', logTail: 'indexing 1200\n```\nERROR: disk full\n', facts: FACTS },
    ...overrides,
  };
}

void test('a held status comment: cause, failed step, checkpoint, fenced log tail and the four actions', () => {
  const text = renderStatusComment(held());
  assert.equal(lines(text)[0], '<!-- ferry:status:m-lx3k9a-00000017 -->');
  includesInOrder(text, [
    '### Ferry: migration `m-lx3k9a-00000017` — held',
    'Held: attempt 2 failed. Nothing runs, nothing is cleaned up, and later migrations of tenant `shop` wait until an operator chooses one of the actions below.',
    '- **State:** held',
    '- **Attempt:** 2',
    '- **Progress:** 1200/5000 (24%)',
    '- **Cause:** `exit-code`: the step exited with a non-zero status (exit code 3)',
    '- **Failed step:** 2 of 2 (`rebuild-index`)',
    '- **Last checkpoint:** `1200`',
    // The log holds ``` itself, so the fence is one backtick longer and cannot be closed by it.
    '````text',
    'indexing 1200',
    '```',
    'ERROR: disk full',
    '````',
    '| Command | What it does |',
    "| `/ferry wipe-and-retry <reason>` | runs the request's wipe step, then reruns from step 1 |",
    '| `/ferry resume <reason>` | reruns from step 2 (rebuild-index) with checkpoint "1200" |',
    '| `/ferry accept-partial <reason>` | ends the migration as accepted-partial and keeps the tenant data as it is |',
    '| `/ferry abandon <reason>` | ends the migration as abandoned and keeps the tenant data as it is |',
    '<sub>Updated 2024-05-02T11:00:00Z. Ferry keeps this comment up to date.</sub>',
  ]);
});

void test('a held status comment keeps only the end of a long log, and says wipe-and-retry is unavailable without a way to wipe', () => {
  const log = Array.from({ length: 500 }, (_, i) => `line ${i + 1}`).join('\n');
  const text = renderStatusComment(held({ held: { cause: 'limit-exceeded', logTail: log, facts: { ...FACTS, hasWipeStep: false, checkpoint: null } } }));
  includesInOrder(text, [
    '- **Cause:** `limit-exceeded`: the job went over its declared peak (its hard limits) and was stopped',
    '- **Last checkpoint:** none',
    '```text',
    '… (earlier lines: ferry logs m-lx3k9a-00000017)',
    'line 461',
    'line 500',
    '```',
    '| `/ferry wipe-and-retry <reason>` | not available: no snapshot and no wipe step |',
    '| `/ferry resume <reason>` | reruns from step 2 (rebuild-index) with no checkpoint |',
  ]);
  assert.doesNotMatch(text, /^line 460$/m);
});

void test('a queued migration behind another thread links that thread', () => {
  const text = renderStatusComment({
    migrationId: 'm-lx3k9a-00000018',
    issue: 'github:acme/platform#743',
    tenant: 'shop',
    state: 'queued',
    attempt: 0,
    steps: ['copy'],
    updatedAt: '2024-05-02T11:00:00Z',
    waitingFor: { migrationId: 'm-lx3k9a-00000017', issue: 'github:acme/platform#742', url: 'https://github.com/acme/platform/issues/742', state: 'held' },
  });
  includesInOrder(text, [
    '<!-- ferry:status:m-lx3k9a-00000018 -->',
    'Waiting: tenant `shop` is held by migration `m-lx3k9a-00000017` of [github:acme/platform\\#742](https://github.com/acme/platform/issues/742) (held). This migration starts after that one ends.',
    '- **Attempt:** none yet',
  ]);
  const unsafe = renderStatusComment({
    migrationId: 'm-lx3k9a-00000018',
    issue: 'gitea:acme/platform#3',
    tenant: 'shop',
    state: 'queued',
    attempt: 0,
    steps: ['copy'],
    updatedAt: 'now',
    waitingFor: { migrationId: 'm-lx3k9a-00000017', issue: 'gitea:acme/platform#2', url: 'javascript:alert(1)', state: 'running' },
  });
  assert.match(unsafe, /held by migration `m-lx3k9a-00000017` of gitea:acme\/platform\\#2 \(running\)\./);
});

void test('a running status comment shows the step and progress', () => {
  const text = renderStatusComment({ ...held(), state: 'running', held: null, currentStep: 0, progress: { done: 3, total: 4 } });
  includesInOrder(text, [
    '### Ferry: migration `m-lx3k9a-00000017` — running',
    'Running attempt 2.',
    '- **Step:** 1 of 2 (`copy-files`)',
    '- **Progress:** 3/4 (75%)',
  ]);
  assert.doesNotMatch(text, /What an operator can do/);
});

void test('the status comment opens with a marker naming its migration; a marker takes only a migration id', () => {
  assert.equal(lines(renderStatusComment(held()))[0], '<!-- ferry:status:m-lx3k9a-00000017 -->');
  assert.throws(() => marker('status', 'm-17 --><script>'), TypeError);
  assert.throws(() => marker('status', 'm-17'), TypeError);
});

void test('the closure summary lists every removed artifact and says tenant data was kept', () => {
  const text = renderClosureSummary({
    issue: 'github:acme/platform#742',
    cancelled: [{ migrationId: 'm-lx3k9a-00000017', from: 'held' }],
    removed: [
      { migrationId: 'm-lx3k9a-00000017', kind: 'scratch', name: '/var/lib/ferry/scratch/m-lx3k9a-00000017-2' },
      { migrationId: 'm-lx3k9a-00000017', kind: 'snapshot', name: 'shop@m-lx3k9a-00000017|pre' },
    ],
    pending: [{ migrationId: 'm-lx3k9a-00000017', kind: 'container', name: 'ferry-m-lx3k9a-00000017-2', error: 'engine unreachable' }],
  });
  includesInOrder(text, [
    '<!-- ferry:closure -->',
    '### Ferry: issue closed',
    'Cancelled: `m-lx3k9a-00000017` (was held).',
    'Removed 2 job artifacts:',
    '| Migration | Kind | Artifact |',
    '| `m-lx3k9a-00000017` | scratch | `/var/lib/ferry/scratch/m-lx3k9a-00000017-2` |',
    '| `m-lx3k9a-00000017` | snapshot | `shop@m-lx3k9a-00000017\\|pre` |',
    '| `m-lx3k9a-00000017` | container | `ferry-m-lx3k9a-00000017-2` | engine unreachable |',
    "Tenant data is not a job artifact and was left as it is. The migrations' history is kept. Reopening the issue recreates nothing.",
  ]);
  assert.match(renderClosureSummary({ issue: 'x', cancelled: [], removed: [] }), /^No job artifacts to remove\.$/m);
});

void test('a refused command gets a reply that mentions its author, quotes the line safely and says why', () => {
  assert.equal(
    renderCommandRefusal({ author: 'dana', line: '/ferry approve', message: 'dana is not an operator on this tracker; ask an operator to do it' }),
    '<!-- ferry:reply -->\n@dana: `/ferry approve` was not applied. dana is not an operator on this tracker; ask an operator to do it\n',
  );
  assert.ok(renderCommandRefusal({ author: 'eve', line: '/ferry resume `x`', message: 'm' }).includes('@eve: `` /ferry resume `x` `` was not applied.'));
});
