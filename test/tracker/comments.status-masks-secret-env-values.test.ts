/**
 * A held status comment shows the failed step's log tail, its checkpoint and the failure detail,
 * all of which the job may have filled with a secret env value it was given: each is shown as
 * `(secret)`, in the text and in the actions table (resume names the checkpoint).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatusComment, type StatusView } from '../../src/tracker/comments.ts';

const SECRET = 'pa55-w0rd-for-db';

function heldView(secretValues?: readonly string[]): StatusView {
  return {
    migrationId: 'm-lx3k9a-00000017',
    issue: 'github:acme/platform#742',
    tenant: 'shop',
    state: 'held',
    attempt: 1,
    steps: ['copy', 'index'],
    updatedAt: '2024-05-02T11:00:00Z',
    held: {
      cause: 'exit-code',
      detail: `exit code 3 (${SECRET})`,
      logTail: `connecting with ${SECRET}\nERROR: login failed for ${SECRET}\n`,
      facts: { attempts: 1, failedStep: 1, checkpoint: `batch-7-${SECRET}`, snapshotAt: null, hasWipeStep: true, stepNames: ['copy', 'index'] },
    },
    ...(secretValues ? { secretValues } : {}),
  };
}

void test('secret values never appear in a held status comment; (secret) stands in their place', () => {
  const text = renderStatusComment(heldView([SECRET, 'other-secret']));
  assert.ok(!text.includes(SECRET), text);
  assert.match(text, /connecting with \(secret\)/);
  assert.match(text, /ERROR: login failed for \(secret\)/);
  assert.match(text, /batch-7-\(secret\)/);
  // The detail is Markdown-escaped: (secret) in it reads \(secret\).
  assert.ok(text.includes(String.raw`exit code 3 \(\(secret\)\)`), text);
});

void test('without secrets the comment shows the log as it is', () => {
  assert.ok(renderStatusComment(heldView()).includes(`connecting with ${SECRET}`));
});
