// A comment the tracker refused with a 500 stays pending in the outbox across a stop and a start
// on the same data folder, is sent by the new service, and nothing is ever sent twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { removeDir, waitFor, type Ferry } from '../../support/harness.ts';
import {
  commentDelivery,
  deliver,
  deliverOk,
  issueDelivery,
  migrationsOf,
  outboxDrained,
  outboxRows,
  refOf,
  registerTenant,
  requestBody,
  startFakeTracker,
  startThreadFerry,
  waitForState,
  withMarker,
  type ThreadRef,
} from './thread-kit.ts';

void test('a pending comment is sent once by the next service after a restart; a replayed delivery changes nothing', async (t) => {
  const tracker = await startFakeTracker('github');
  let ferry: Ferry = await startThreadFerry(tracker, { retryBaseMs: 600_000 });
  const dataDir = ferry.dataDir;
  t.after(async () => {
    await ferry.stop();
    await tracker.close();
    removeDir(dataDir);
  });
  await registerTenant(ferry);
  const thread: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 12 };
  const issue = refOf(thread);

  // The tracker answers the first comment with a 500: the row stays pending (next retry in minutes).
  tracker.recorder.queue.push({ status: 500, body: { message: 'Server Error' } });
  await deliverOk(ferry, 'github', issueDelivery(thread, 'opened', requestBody([{ name: 'hello', run: ['sh', '-c', 'echo hi'] }]), 'alice'));
  await waitFor('the failed attempt to be recorded', async () => {
    const [row] = await outboxRows(ferry, { issue });
    return row !== undefined && row.state === 'pending' && Number(row.attempts) === 1;
  });
  assert.equal(tracker.recorder.requests.length, 1);
  assert.equal(tracker.comments.length, 0);

  // Stop, and start a new service on the same data folder: it sends the pending row, once.
  await ferry.stop();
  ferry = await startThreadFerry(tracker, { dataDir });
  await outboxDrained(ferry);
  assert.equal(tracker.recorder.requests.length, 2, 'one failed try, one accepted');
  assert.equal(tracker.comments.length, 1);
  const [m] = await migrationsOf(ferry, issue);
  assert.ok(m);
  assert.match(tracker.comments[0]!.bodies[0]!, new RegExp(`^<!-- ferry:verdict:${m.id} -->`));

  // Run it to the end from the thread; then restart again: nothing is re-sent, nothing re-created.
  const approve = await deliverOk(ferry, 'github', commentDelivery(thread, '/ferry approve', 'olga'));
  await waitForState(ferry, m.id, 'succeeded');
  await waitFor('the final status', async () => {
    await outboxDrained(ferry);
    return (withMarker(tracker, `<!-- ferry:status:${m.id} -->`)[0]?.bodies.at(-1) ?? '').includes('— succeeded');
  });
  const sentBefore = tracker.recorder.requests.length;
  await ferry.stop();
  ferry = await startThreadFerry(tracker, { dataDir });
  await outboxDrained(ferry);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(tracker.recorder.requests.length, sentBefore, 'a restart sends nothing already sent');
  assert.equal(withMarker(tracker, `<!-- ferry:status:${m.id} -->`).length, 1);

  // The approve delivery again (a redelivery): acknowledged, not applied.
  const detail = JSON.stringify((await ferry.api('GET', `/v1/migrations/${m.id}`)).body);
  const replay = await deliver(ferry, 'github', commentDelivery(thread, '/ferry approve', 'olga'), { deliveryId: approve.deliveryId });
  assert.equal(replay.status, 200);
  assert.equal(replay.body.outcome, 'duplicate');
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(JSON.stringify((await ferry.api('GET', `/v1/migrations/${m.id}`)).body), detail);
  assert.equal(tracker.recorder.requests.length, sentBefore, 'a replay posts nothing');
});
