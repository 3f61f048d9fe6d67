import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../src/core/errors.ts';
import { parseThreadEvent, parseThreadEventBody } from '../../src/tracker/thread-events.ts';
import { verifyDelivery } from '../../src/tracker/webhook-verify.ts';
import { body, fixture, githubExample, githubSignature } from './helpers.ts';

void test('github issues.opened (real payload) becomes issue-opened with a normalised ref', () => {
  const payload = githubExample('issues', 'opened');
  const event = parseThreadEvent('github', 'issues', payload);
  assert.deepEqual(event, {
    kind: 'issue-opened',
    issue: 'github:Codertocat/Hello-World#1',
    body: (payload.issue as { body: string }).body,
    author: 'Codertocat',
    url: 'https://github.com/Codertocat/Hello-World/issues/1',
  });
});

void test('github issues.closed becomes issue-closed', () => {
  // @octokit/webhooks-examples 7.6.1 ships no issues.closed example; GitHub's closed payload has
  // the same shape as reopened with another action and state, so the real reopened one is used.
  const payload = githubExample('issues', 'reopened');
  payload.action = 'closed';
  (payload.issue as Record<string, unknown>).state = 'closed';
  const event = parseThreadEvent('github', 'issues', payload);
  assert.equal(event?.kind, 'issue-closed');
  assert.equal(event?.issue, 'github:Codertocat/Hello-World#1');
  assert.equal(event?.author, 'Codertocat');
});

void test('github issues with a null body (real opened-with-empty-body payload) gives an empty body', () => {
  const payload = githubExample('issues', 'opened');
  payload.issue = { ...(payload.issue as object), body: null };
  assert.equal(parseThreadEvent('github', 'issues', payload)?.body, '');
});

void test('github issue_comment.created (real payload) becomes a comment with its id and link', () => {
  const event = parseThreadEvent('github', 'issue_comment', githubExample('issue_comment', 'created'));
  assert.deepEqual(event, {
    kind: 'comment',
    issue: 'github:Codertocat/Hello-World#1',
    body: "You are totally right! I'll get this fixed right away.",
    author: 'Codertocat',
    commentId: '492700400',
    url: 'https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400',
  });
});

void test('events and actions Ferry does not act on are null', () => {
  assert.equal(parseThreadEvent('github', 'issues', githubExample('issues', 'labeled')), null);
  assert.equal(parseThreadEvent('github', 'issue_comment', githubExample('issue_comment', 'edited')), null);
  assert.equal(parseThreadEvent('github', 'issue_comment', githubExample('issue_comment', 'deleted')), null);
  assert.equal(parseThreadEvent('github', 'ping', { zen: 'Keep it logically awesome.' }), null);
  assert.equal(parseThreadEvent('github', 'push', {}), null);
  assert.equal(parseThreadEvent('gitlab', 'Push Hook', {}), null);
});

void test('a comment on a pull request is not a thread event', () => {
  const payload = githubExample('issue_comment', 'created');
  (payload.issue as Record<string, unknown>).pull_request = { url: 'https://api.github.com/repos/Codertocat/Hello-World/pulls/1' };
  assert.equal(parseThreadEvent('github', 'issue_comment', payload), null);
  const gitea = fixture('gitea-issue-comment-created.json');
  gitea.is_pull = true;
  assert.equal(parseThreadEvent('gitea', 'issue_comment', gitea), null);
});

void test("Ferry's own comments are skipped: by the configured bot user (any case) and by the marker", () => {
  const payload = githubExample('issue_comment', 'created');
  assert.equal(parseThreadEvent('github', 'issue_comment', payload, { botUser: 'codertocat' }), null);
  assert.notEqual(parseThreadEvent('github', 'issue_comment', payload, { botUser: 'ferry-bot' }), null);
  (payload.comment as Record<string, unknown>).body =
    '<!-- ferry:status:m-lx3k9a-00000001 -->\n### Ferry: migration `m-lx3k9a-00000001` — held\n/ferry resume x';
  assert.equal(parseThreadEvent('github', 'issue_comment', payload, { botUser: 'ferry-bot' }), null);
});

void test('gitea issues opened becomes issue-opened of gitea:acme/platform#12', () => {
  const event = parseThreadEvent('gitea', 'issues', fixture('gitea-issues-opened.json'));
  assert.equal(event?.kind, 'issue-opened');
  assert.equal(event?.issue, 'gitea:acme/platform#12');
  assert.equal(event?.author, 'dana');
  assert.equal(event?.url, 'https://gitea.example/acme/platform/issues/12');
  assert.match(event?.body ?? '', /```ferry\r\ntenant: shop/);
});

void test('gitea issues closed and reopened are recognised; label changes are not', () => {
  for (const [action, kind] of [
    ['closed', 'issue-closed'],
    ['reopened', 'issue-reopened'],
    ['edited', 'issue-edited'],
  ] as const) {
    const payload = fixture('gitea-issues-opened.json');
    payload.action = action;
    assert.equal(parseThreadEvent('gitea', 'issues', payload)?.kind, kind);
  }
  const labelled = fixture('gitea-issues-opened.json');
  labelled.action = 'label_updated';
  assert.equal(parseThreadEvent('gitea', 'issues', labelled), null);
});

void test('gitea issue_comment created becomes a comment', () => {
  assert.deepEqual(parseThreadEvent('gitea', 'issue_comment', fixture('gitea-issue-comment-created.json')), {
    kind: 'comment',
    issue: 'gitea:acme/platform#12',
    body: 'Looks right.\n\n/ferry approve',
    author: 'olav',
    commentId: '4411',
    url: 'https://gitea.example/acme/platform/issues/12#issuecomment-4411',
  });
});

void test('gitlab Issue Hook maps open/update/close/reopen and keeps nested group paths', () => {
  const event = parseThreadEvent('gitlab', 'Issue Hook', fixture('gitlab-issue-hook-open.json'));
  assert.equal(event?.kind, 'issue-opened');
  assert.equal(event?.issue, 'gitlab:group/sub/repo#5');
  assert.equal(event?.author, 'dana');
  assert.equal(event?.url, 'https://gitlab.example/group/sub/repo/-/issues/5');
  for (const [action, kind] of [
    ['update', 'issue-edited'],
    ['close', 'issue-closed'],
    ['reopen', 'issue-reopened'],
  ] as const) {
    const payload = fixture('gitlab-issue-hook-open.json');
    (payload.object_attributes as Record<string, unknown>).action = action;
    assert.equal(parseThreadEvent('gitlab', 'Issue Hook', payload)?.kind, kind);
  }
});

void test('gitlab Note Hook on an issue becomes a comment; notes on merge requests and edits do not', () => {
  assert.deepEqual(parseThreadEvent('gitlab', 'Note Hook', fixture('gitlab-note-hook-issue.json')), {
    kind: 'comment',
    issue: 'gitlab:group/sub/repo#5',
    body: '/ferry resume disk on the source host was full, freed space',
    author: 'olav',
    commentId: '1241',
    url: 'https://gitlab.example/group/sub/repo/-/issues/5#note_1241',
  });
  const onMergeRequest = fixture('gitlab-note-hook-issue.json');
  (onMergeRequest.object_attributes as Record<string, unknown>).noteable_type = 'MergeRequest';
  delete onMergeRequest.issue;
  assert.equal(parseThreadEvent('gitlab', 'Note Hook', onMergeRequest), null);
  const edited = fixture('gitlab-note-hook-issue.json');
  (edited.object_attributes as Record<string, unknown>).action = 'update';
  assert.equal(parseThreadEvent('gitlab', 'Note Hook', edited), null);
});

void test('a relevant payload missing the fields Ferry reads is a FERRY_BAD_REQUEST (400) naming them', () => {
  const payload = githubExample('issues', 'opened');
  delete (payload.issue as Record<string, unknown>).number;
  assert.throws(
    () => parseThreadEvent('github', 'issues', payload),
    (err: unknown) => err instanceof FerryError && err.code === 'FERRY_BAD_REQUEST' && err.status === 400 && /issue\.number/.test(err.message),
  );
  const note = fixture('gitlab-note-hook-issue.json');
  delete note.project;
  assert.throws(
    () => parseThreadEvent('gitlab', 'Note Hook', note),
    (err: unknown) => err instanceof FerryError && err.status === 400,
  );
  assert.throws(
    () => parseThreadEvent('gitea', 'issues', 'not an object'),
    (err: unknown) => err instanceof FerryError && err.status === 400,
  );
});

void test('a body that is not JSON (e.g. a form-encoded Gitea hook) is a 400 that says to use application/json', () => {
  assert.throws(
    () => parseThreadEventBody('gitea', 'issues', Buffer.from('payload=%7B%7D')),
    (err: unknown) => err instanceof FerryError && err.status === 400 && /application\/json/.test(err.message),
  );
});

void test('verified then normalised: a signed GitHub delivery end to end', async () => {
  const raw = body(githubExample('issue_comment', 'created'));
  const verified = await verifyDelivery(
    'github',
    { 'x-hub-signature-256': await githubSignature('s3cret', raw), 'x-github-delivery': 'd-9', 'x-github-event': 'issue_comment' },
    raw,
    's3cret',
  );
  assert.ok(verified.ok);
  const event = parseThreadEventBody('github', verified.event, raw, { botUser: 'ferry[bot]' });
  assert.equal(event?.kind, 'comment');
});
