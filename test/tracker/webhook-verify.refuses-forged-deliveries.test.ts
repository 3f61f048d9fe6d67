import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrackerKind } from '../../src/core/issue-ref.ts';
import { verifyDelivery, type DeliveryHeaders, type VerifyResult } from '../../src/tracker/webhook-verify.ts';
import { body, fixture, githubExample, githubSignature, giteaSignature } from './helpers.ts';

const SECRET = 'the-real-secret';
const OTHER = 'a-guessed-secret';

interface Case {
  readonly tracker: TrackerKind;
  readonly payload: () => Record<string, unknown>;
  readonly ids: DeliveryHeaders;
  readonly signed: (secret: string, raw: Buffer) => Promise<DeliveryHeaders>;
  readonly garbage: DeliveryHeaders;
}

const CASES: readonly Case[] = [
  {
    tracker: 'github',
    payload: () => githubExample('issues', 'opened'),
    ids: { 'x-github-delivery': 'd-1', 'x-github-event': 'issues' },
    signed: async (secret, raw) => ({ 'x-hub-signature-256': await githubSignature(secret, raw) }),
    garbage: { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
  },
  {
    tracker: 'gitea',
    payload: () => fixture('gitea-issues-opened.json'),
    ids: { 'x-gitea-delivery': 'd-1', 'x-gitea-event': 'issues' },
    signed: async (secret, raw) => ({ 'x-gitea-signature': giteaSignature(secret, raw) }),
    garbage: { 'x-gitea-signature': 'f'.repeat(64) },
  },
  {
    tracker: 'gitlab',
    payload: () => fixture('gitlab-issue-hook-open.json'),
    ids: { 'x-gitlab-event-uuid': 'd-1', 'x-gitlab-event': 'Issue Hook' },
    signed: async (secret) => ({ 'x-gitlab-token': secret }),
    garbage: { 'x-gitlab-token': 'letmein' },
  },
];

function assertRefused(result: VerifyResult, reason: string): void {
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.status, 401);
  assert.equal(result.code, 'FERRY_UNAUTHENTICATED');
  assert.equal(result.reason, reason);
}

for (const c of CASES) {
  void test(`${c.tracker}: an unsigned delivery is refused with 401`, async () => {
    const raw = body(c.payload());
    assertRefused(await verifyDelivery(c.tracker, { ...c.ids }, raw, SECRET), 'missing-signature');
  });

  void test(`${c.tracker}: a made-up signature is refused with 401`, async () => {
    const raw = body(c.payload());
    assertRefused(await verifyDelivery(c.tracker, { ...c.ids, ...c.garbage }, raw, SECRET), 'bad-signature');
  });

  void test(`${c.tracker}: a delivery signed with the wrong secret is refused with 401`, async () => {
    const raw = body(c.payload());
    assertRefused(await verifyDelivery(c.tracker, { ...c.ids, ...(await c.signed(OTHER, raw)) }, raw, SECRET), 'bad-signature');
  });

  void test(`${c.tracker}: with no secret configured every delivery is refused, and the message says to configure one`, async () => {
    const raw = body(c.payload());
    const headers = { ...c.ids, ...(await c.signed(SECRET, raw)) };
    for (const secret of [undefined, '']) {
      const result = await verifyDelivery(c.tracker, headers, raw, secret);
      assertRefused(result, 'no-secret');
      assert.match(result.ok ? '' : result.message, /no secret is configured; set .* in Ferry's configuration/);
    }
  });

  void test(`${c.tracker}: a duplicated signature header is refused`, async () => {
    const raw = body(c.payload());
    const signed = await c.signed(SECRET, raw);
    const [name, value] = Object.entries(signed)[0] as [string, string];
    assertRefused(await verifyDelivery(c.tracker, { ...c.ids, [name]: [value, value] }, raw, SECRET), 'bad-signature');
  });
}

for (const c of CASES.filter((x) => x.tracker !== 'gitlab')) {
  void test(`${c.tracker}: a body changed after signing is refused with 401`, async () => {
    const payload = c.payload();
    const raw = body(payload);
    const headers = { ...c.ids, ...(await c.signed(SECRET, raw)) };
    const tampered = Buffer.from(raw.toString('utf8').replace('"opened"', '"closed"'), 'utf8');
    assert.notDeepEqual(tampered, raw);
    assertRefused(await verifyDelivery(c.tracker, headers, tampered, SECRET), 'bad-signature');
    // One extra trailing byte is enough.
    assertRefused(await verifyDelivery(c.tracker, headers, Buffer.concat([raw, Buffer.from(' ')]), SECRET), 'bad-signature');
  });
}

void test('gitlab: the token is a shared secret, not a signature, so a changed body still passes (documented limit of GitLab webhooks)', async () => {
  const raw = Buffer.from(body(fixture('gitlab-issue-hook-open.json')).toString('utf8').replace('"open"', '"close"'));
  const result = await verifyDelivery('gitlab', { 'x-gitlab-token': SECRET, 'x-gitlab-event-uuid': 'd-1', 'x-gitlab-event': 'Issue Hook' }, raw, SECRET);
  assert.equal(result.ok, true);
});

void test('gitea: when Forgejo sends both signature headers, a forged one is refused even if the other matches', async () => {
  const raw = body(fixture('gitea-issues-opened.json'));
  const result = await verifyDelivery(
    'gitea',
    {
      'x-gitea-signature': giteaSignature(SECRET, raw),
      'x-forgejo-signature': giteaSignature(OTHER, raw),
      'x-forgejo-delivery': 'd',
      'x-forgejo-event': 'issues',
    },
    raw,
    SECRET,
  );
  assertRefused(result, 'bad-signature');
});

void test('github: a body that is not UTF-8 is refused before it is checked', async () => {
  const raw = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
  const result = await verifyDelivery(
    'github',
    { 'x-hub-signature-256': `sha256=${'a'.repeat(64)}`, 'x-github-delivery': 'd', 'x-github-event': 'issues' },
    raw,
    SECRET,
  );
  assertRefused(result, 'bad-body');
});

void test('a correctly signed delivery without a delivery id or event name is a 400', async () => {
  const raw = body(githubExample('issues', 'opened'));
  const signature = await githubSignature(SECRET, raw);
  const noId = await verifyDelivery('github', { 'x-hub-signature-256': signature, 'x-github-event': 'issues' }, raw, SECRET);
  assert.deepEqual(noId.ok ? null : [noId.status, noId.code, noId.reason], [400, 'FERRY_BAD_REQUEST', 'missing-delivery-id']);
  const noEvent = await verifyDelivery('github', { 'x-hub-signature-256': signature, 'x-github-delivery': 'd' }, raw, SECRET);
  assert.deepEqual(noEvent.ok ? null : [noEvent.status, noEvent.code, noEvent.reason], [400, 'FERRY_BAD_REQUEST', 'missing-event']);
});

void test('an unauthenticated delivery learns nothing about missing headers: authentication is checked first', async () => {
  const raw = body(githubExample('issues', 'opened'));
  const result = await verifyDelivery('github', {}, raw, SECRET);
  assertRefused(result, 'missing-signature');
});
