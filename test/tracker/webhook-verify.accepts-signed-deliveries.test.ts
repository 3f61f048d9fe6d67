import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyDelivery } from '../../src/tracker/webhook-verify.ts';
import { body, fixture, githubExample, githubSignature, giteaSignature } from './helpers.ts';

const SECRET = 'correct horse battery staple';

void test('a GitHub issues.opened delivery signed with the configured secret is accepted', async () => {
  const raw = body(githubExample('issues', 'opened'));
  const result = await verifyDelivery(
    'github',
    { 'x-hub-signature-256': await githubSignature(SECRET, raw), 'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958', 'x-github-event': 'issues' },
    raw,
    SECRET,
  );
  assert.deepEqual(result, { ok: true, tracker: 'github', deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958', event: 'issues' });
});

void test('header names are matched case-insensitively', async () => {
  const raw = body(githubExample('issue_comment', 'created'));
  const result = await verifyDelivery(
    'github',
    { 'X-Hub-Signature-256': await githubSignature(SECRET, raw), 'X-GitHub-Delivery': 'd-1', 'X-GitHub-Event': 'issue_comment' },
    raw,
    SECRET,
  );
  assert.equal(result.ok, true);
  assert.equal(result.ok && result.event, 'issue_comment');
});

void test('a Gitea delivery with X-Gitea-Signature is accepted', async () => {
  const raw = body(fixture('gitea-issues-opened.json'));
  const result = await verifyDelivery(
    'gitea',
    { 'x-gitea-signature': giteaSignature(SECRET, raw), 'x-gitea-delivery': 'a8f1c7f0-1111-4c1e-9d3e-6c7a1b2c3d4e', 'x-gitea-event': 'issues' },
    raw,
    SECRET,
  );
  assert.deepEqual(result, { ok: true, tracker: 'gitea', deliveryId: 'a8f1c7f0-1111-4c1e-9d3e-6c7a1b2c3d4e', event: 'issues' });
});

void test('a Forgejo delivery (X-Forgejo-* headers, with the Gitea ones alongside) is accepted', async () => {
  const raw = body(fixture('gitea-issue-comment-created.json'));
  const signature = giteaSignature(SECRET, raw);
  const result = await verifyDelivery(
    'gitea',
    {
      'x-forgejo-signature': signature,
      'x-gitea-signature': signature,
      'x-forgejo-delivery': 'f-42',
      'x-gitea-delivery': 'f-42',
      'x-forgejo-event': 'issue_comment',
      'x-gitea-event': 'issue_comment',
    },
    raw,
    SECRET,
  );
  assert.deepEqual(result, { ok: true, tracker: 'gitea', deliveryId: 'f-42', event: 'issue_comment' });
});

void test('a GitLab delivery with the shared X-Gitlab-Token is accepted; the delivery id is X-Gitlab-Event-UUID', async () => {
  const raw = body(fixture('gitlab-note-hook-issue.json'));
  const result = await verifyDelivery(
    'gitlab',
    { 'x-gitlab-token': SECRET, 'x-gitlab-event-uuid': '13792a34-cac6-4fda-95a8-c58e00a3954e', 'idempotency-key': 'other', 'x-gitlab-event': 'Note Hook' },
    raw,
    SECRET,
  );
  assert.deepEqual(result, { ok: true, tracker: 'gitlab', deliveryId: '13792a34-cac6-4fda-95a8-c58e00a3954e', event: 'Note Hook' });
});

void test('a GitLab delivery without X-Gitlab-Event-UUID falls back to Idempotency-Key', async () => {
  const raw = body(fixture('gitlab-issue-hook-open.json'));
  const result = await verifyDelivery('gitlab', { 'x-gitlab-token': SECRET, 'idempotency-key': 'idem-7', 'x-gitlab-event': 'Issue Hook' }, raw, SECRET);
  assert.deepEqual(result, { ok: true, tracker: 'gitlab', deliveryId: 'idem-7', event: 'Issue Hook' });
});
