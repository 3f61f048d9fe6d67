// A migration queued behind a held migration of another thread says so in its status comment and
// links that thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../support/harness.ts';
import {
  commentDelivery,
  deliverOk,
  issueDelivery,
  migrationsOf,
  outboxDrained,
  refOf,
  requestBody,
  waitForState,
  withMarker,
  type ThreadRef,
  startThreadWorld,
} from './thread-kit.ts';

void test('a migration waiting for its tenant links the thread whose migration holds it', async (t) => {
  const { tracker, ferry } = await startThreadWorld(t, 'github');
  const a: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 40 };
  const b: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 41 };

  await deliverOk(ferry, 'github', issueDelivery(a, 'opened', requestBody([{ name: 'fail', run: ['sh', '-c', 'echo no; exit 1'] }]), 'alice'));
  await deliverOk(ferry, 'github', issueDelivery(b, 'opened', requestBody([{ name: 'hello', run: ['sh', '-c', 'echo hi'] }]), 'alice'));
  const [held] = await migrationsOf(ferry, refOf(a));
  const [waiting] = await migrationsOf(ferry, refOf(b));
  assert.ok(held && waiting);
  await deliverOk(ferry, 'github', commentDelivery(a, '/ferry approve', 'olga'));
  await waitForState(ferry, held.id, 'held');
  await deliverOk(ferry, 'github', commentDelivery(b, '/ferry approve', 'olga'));
  await waitForState(ferry, waiting.id, 'queued');

  const line = `Waiting: tenant \`shop\` is held by migration \`${held.id}\` of [github:acme/platform\\#40](https://github.example/acme/platform/issues/40) (held). This migration starts after that one ends.`;
  await waitFor('the waiting status', async () => {
    await outboxDrained(ferry);
    return withMarker(tracker, `<!-- ferry:status:${waiting.id} -->`)[0]?.bodies.at(-1)?.split('\n').includes(line);
  });

  // The holder ends (abandoned from its thread): the waiting one runs, and its status follows.
  await deliverOk(ferry, 'github', commentDelivery(a, '/ferry abandon migrating with another tool', 'olga'));
  await waitForState(ferry, waiting.id, 'succeeded');
  await waitFor('the succeeded status', async () => {
    await outboxDrained(ferry);
    return withMarker(tracker, `<!-- ferry:status:${waiting.id} -->`)[0]?.bodies.at(-1)?.includes('— succeeded');
  });
  assert.equal(withMarker(tracker, `<!-- ferry:status:${waiting.id} -->`).length, 1);
});
