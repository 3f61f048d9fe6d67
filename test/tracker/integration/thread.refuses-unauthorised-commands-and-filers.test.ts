// Only the users the configuration names may file and command; everyone else, and every malformed
// command, gets a reply saying why, and nothing changes. Edits follow the filing rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../support/harness.ts';
import {
  commentDelivery,
  current,
  deliverOk,
  issueDelivery,
  migrationsOf,
  outboxDrained,
  refOf,
  requestBody,
  snapshotState,
  waitForState,
  type ThreadRef,
  startThreadWorld,
} from './thread-kit.ts';

void test('unauthorised filers and commanders, and malformed commands, get a reply and change nothing', async (t) => {
  const { tracker, ferry } = await startThreadWorld(t, 'github');
  const body = requestBody([{ name: 'hello', run: ['sh', '-c', 'echo hi'] }]);

  // A stranger's request is not filed.
  const strangers: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 20 };
  await deliverOk(ferry, 'github', issueDelivery(strangers, 'opened', body, 'mallory'));
  await outboxDrained(ferry);
  assert.equal((await migrationsOf(ferry, refOf(strangers))).length, 0);
  assert.match(
    current(tracker).at(-1)!,
    /^<!-- ferry:reply -->\n@mallory: the request in this issue was not filed: mallory is not a filer on this tracker; ask a Ferry admin to add mallory to the filers/,
  );

  const thread: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 21 };
  await deliverOk(ferry, 'github', issueDelivery(thread, 'opened', body, 'alice'));
  await outboxDrained(ferry);
  const [m] = await migrationsOf(ferry, refOf(thread));
  assert.ok(m);
  const before = await snapshotState(ferry);
  const comments = tracker.comments.length;

  const refusals: Array<[string, string, string]> = [
    [
      'alice',
      '/ferry approve',
      '@alice: `/ferry approve` was not applied. alice is not an operator on this tracker (only filer); ask a Ferry admin to add alice to the operators',
    ],
    ['mallory', '/ferry abandon not needed', '@mallory: `/ferry abandon not needed` was not applied. mallory is not an operator on this tracker;'],
    ['mallory', '/ferry status', '@mallory: `/ferry status` was not applied. mallory is not a filer on this tracker;'],
    ['olga', '/ferry resume', '@olga: `/ferry resume` was not applied. /ferry resume needs a reason on the same line'],
    ['olga', '/ferry launch', '@olga: `/ferry launch` was not applied. /ferry launch is not a command; the commands are /ferry approve'],
    ['olga', '/ferry approve\n/ferry cancel', '@olga: `/ferry approve` was not applied. this comment has 2 /ferry commands; post one command per comment'],
    [
      'olga',
      '/ferry resume it is fine now',
      `@olga: \`/ferry resume it is fine now\` was not applied. migration ${m.id} is filed; resume applies only to a migration that is held`,
    ],
  ];
  for (const [author, text] of refusals) await deliverOk(ferry, 'github', commentDelivery(thread, text, author));
  await outboxDrained(ferry);
  const replies = current(tracker).slice(comments);
  assert.equal(replies.length, refusals.length);
  refusals.forEach(([, , expected], i) => {
    assert.equal(replies[i]!.split('\n')[0], '<!-- ferry:reply -->');
    assert.ok(replies[i]!.split('\n')[1]!.startsWith(expected), `reply ${i}: ${replies[i]}`);
  });
  // Refusals record the deliveries and post replies; migrations are exactly as before.
  const after = (await snapshotState(ferry)) as { list: unknown; details: unknown };
  const was = before as { list: unknown; details: unknown };
  assert.deepEqual(after.list, was.list);
  assert.deepEqual(after.details, was.details);

  // A filer may ask for the status: a one-line reply, recorded with the tracker user as actor.
  await deliverOk(ferry, 'github', commentDelivery(thread, '/ferry status', 'alice'));
  await outboxDrained(ferry);
  assert.match(
    current(tracker).at(-1)!,
    new RegExp(`^<!-- ferry:reply -->\\n@alice: migration \`${m.id}\` is \\*\\*filed\\*\\* \\(no attempt yet\\)\\. It starts after an operator approves it`),
  );
  const events = (await ferry.api('GET', `/v1/migrations/${m.id}`)).body.events as Array<{ kind: string; actor: string }>;
  assert.equal(events.at(-1)?.kind, 'status');
  assert.equal(events.at(-1)?.actor, 'github:alice');
});

void test('edits: a filed request is replaced, a rejected one is checked again, an approved one is not changed', async (t) => {
  const { tracker, ferry } = await startThreadWorld(t, 'github');
  const thread: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 30 };
  const issue = refOf(thread);
  // In the tenant's data folder: a confined job sees nothing else of the host.
  const release = join(ferry.dataDir, 'tenants', 'shop', 'release');
  const steps = [{ name: 'wait', run: ['sh', '-c', `while [ ! -f '${release}' ]; do sleep 0.05; done`] }];

  // Over 2x the steady-state: rejected, nothing filed, the reply says how to fix it.
  await deliverOk(ferry, 'github', issueDelivery(thread, 'opened', requestBody(steps, 'shop', { cpu: '500m', memory: '3Gi' }), 'alice'));
  await outboxDrained(ferry);
  assert.equal((await migrationsOf(ferry, issue)).length, 0);
  const rejected = current(tracker).at(-1)!;
  assert.match(rejected, /^<!-- ferry:verdict -->\n### Ferry: request rejected/);
  assert.ok(rejected.includes('| memory | 3Gi | 1Gi | 2Gi | **fail**: over 2x steady-state |'));
  assert.ok(rejected.includes("- memory peak 3Gi exceeds 2 x steady-state 1Gi of tenant shop (cap 2Gi); lower the peak or raise the tenant's steady-state"));

  // The edit fixes it: filed.
  await deliverOk(ferry, 'github', issueDelivery(thread, 'edited', requestBody(steps, 'shop', { cpu: '500m', memory: '1Gi' }), 'alice'));
  await outboxDrained(ferry);
  const [first] = await migrationsOf(ferry, issue);
  assert.ok(first);
  assert.match(current(tracker).at(-1)!, new RegExp(`^<!-- ferry:verdict:${first.id} -->\\n### Ferry: request admitted`));

  // An edit that leaves the block as it is (a title change) does nothing.
  const count = tracker.comments.length;
  await deliverOk(ferry, 'github', issueDelivery(thread, 'edited', requestBody(steps, 'shop', { cpu: '500m', memory: '1Gi' }), 'alice'));
  await outboxDrained(ferry);
  assert.equal(tracker.comments.length, count);

  // A changed block while filed: the old one is cancelled, the new one filed.
  await deliverOk(ferry, 'github', issueDelivery(thread, 'edited', requestBody(steps, 'shop', { cpu: '500m', memory: '512Mi' }), 'alice'));
  await outboxDrained(ferry);
  const list = await migrationsOf(ferry, issue);
  assert.deepEqual(
    list.map((m) => m.state),
    ['cancelled', 'filed'],
  );
  const second = list[1]!;
  const [note, verdict] = current(tracker).slice(-2);
  assert.match(note!, new RegExp(`@alice: migration \`${first.id}\` \\(filed, not approved yet\\) was cancelled because the request was edited`));
  assert.match(verdict!, new RegExp(`^<!-- ferry:verdict:${second.id} -->`));

  // Approved and running: an edit does not change it, and the reply says so.
  await deliverOk(ferry, 'github', commentDelivery(thread, '/ferry approve', 'olga'));
  await waitForState(ferry, second.id, 'running');
  await deliverOk(ferry, 'github', issueDelivery(thread, 'edited', requestBody(steps, 'shop', { cpu: '250m', memory: '512Mi' }), 'alice'));
  await outboxDrained(ferry);
  await waitFor('the note', () =>
    current(tracker).some((c) => c.includes(`@alice: migration \`${second.id}\` is already running, so this edit does not change it`)),
  );
  assert.deepEqual(
    (await migrationsOf(ferry, issue)).map((m) => m.state),
    ['cancelled', 'running'],
  );
  writeFileSync(release, '');
  await waitForState(ferry, second.id, 'succeeded');
});
