// For each tracker: an issue with a ferry block is filed, approved, fails, is resumed, succeeds, and
// is torn down by closing the issue — all from the thread, with Ferry's comments checked line by line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../support/harness.ts';
import {
  TRACKER_KINDS,
  commentDelivery,
  current,
  deliverOk,
  firstLine,
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

const CREATE_PATH = {
  github: '/repos/acme/platform/issues/7/comments',
  gitea: '/api/v1/repos/acme/platform/issues/7/comments',
  gitlab: '/api/v4/projects/group%2Fsub%2Fplatform/issues/7/notes',
} as const;

/** Lines in order; a RegExp matches a whole line (for wording that belongs to the substrate). */
function assertLines(text: string, expected: ReadonlyArray<string | RegExp>): void {
  const all = text.split('\n');
  let from = 0;
  for (const line of expected) {
    const at = all.findIndex((l, i) => i >= from && (typeof line === 'string' ? l === line : line.test(l)));
    assert.ok(at !== -1, `missing line (in order): ${line}\n--- comment ---\n${text}`);
    from = at + 1;
  }
}

for (const kind of TRACKER_KINDS) {
  void test(`${kind}: a thread carries a migration from request to teardown`, async (t) => {
    const { tracker, ferry } = await startThreadWorld(t, kind);
    const thread: ThreadRef = { kind, repo: kind === 'gitlab' ? 'group/sub/platform' : 'acme/platform', number: 7 };
    const issue = refOf(thread);
    // In the tenant's data folder: a confined job sees nothing else of the host.
    const release = join(ferry.dataDir, 'tenants', 'shop', 'release-copy');
    const body = requestBody([
      { name: 'copy', run: ['sh', '-c', `while [ ! -f '${release}' ]; do sleep 0.05; done; echo copied`] },
      {
        name: 'index',
        run: ['sh', '-c', 'echo indexing; echo "::ferry::checkpoint 42"; [ "$FERRY_ATTEMPT" -ge 2 ] || { echo "ERROR: disk full"; exit 3; }; echo indexed'],
      },
    ]);

    // 1. The issue is opened with a ferry block: filed, and answered with the verdict.
    await deliverOk(ferry, kind, issueDelivery(thread, 'opened', body, 'alice'));
    await outboxDrained(ferry);
    const [filed] = await migrationsOf(ferry, issue);
    assert.ok(filed, 'a migration was filed');
    assert.equal(filed.state, 'filed');
    const id = filed.id;
    assert.equal(tracker.comments.length, 1);
    const verdict = current(tracker)[0] ?? '';
    assert.equal(firstLine(verdict), `<!-- ferry:verdict:${id} -->`);
    assertLines(verdict, [
      '### Ferry: request admitted',
      '| Dimension | Declared peak | Steady-state | Cap (2x) | Result |',
      '| cpu | 500m | 1 | 2 | pass |',
      '| memory | 256Mi | 1Gi | 2Gi | pass |',
      `Filed as migration \`${id}\`. It starts after an operator approves it with \`/ferry approve\`.`,
    ]);
    assert.equal(tracker.accepted[0]?.url, CREATE_PATH[kind]);
    const auth = tracker.accepted[0]?.headers;
    assert.ok(kind === 'gitlab' ? auth?.['private-token'] === 'bot-token' : auth?.authorization === 'token bot-token', 'the bot token is sent');
    assert.equal((await ferry.api('GET', `/v1/migrations/${id}`)).body.filedBy, `${kind}:alice`);

    // 2. An operator approves: one status comment, created once and then edited in place.
    await deliverOk(ferry, kind, commentDelivery(thread, 'Looks right.\n\n/ferry approve', 'olga'));
    await waitFor('the status comment', () => withMarker(tracker, `<!-- ferry:status:${id} -->`).length === 1);
    writeFileSync(release, '');
    await waitForState(ferry, id, 'held');
    await waitFor('the held status', async () => {
      await outboxDrained(ferry);
      return (withMarker(tracker, `<!-- ferry:status:${id} -->`)[0]?.bodies.at(-1) ?? '').includes('— held');
    });
    const statuses = withMarker(tracker, `<!-- ferry:status:${id} -->`);
    assert.equal(statuses.length, 1, 'one status comment per migration');
    const status = statuses[0]!;
    assert.ok(status.bodies.length >= 2, 'the status comment was edited in place');
    assertLines(status.bodies.at(-1)!, [
      `### Ferry: migration \`${id}\` — held`,
      'Held: attempt 1 failed. Nothing runs, nothing is cleaned up, and later migrations of tenant `shop` wait until an operator chooses one of the actions below.',
      /^- \*\*Cause:\*\* `exit-code`: the step exited with a non-zero status \(step 2 \\\(index\\\) .*3\)$/,
      '- **Failed step:** 2 of 2 (`index`)',
      '- **Last checkpoint:** `42`',
      'Log tail:',
      'indexing',
      'ERROR: disk full',
      // The tenant's folder exists from its registration on (it is handed to the tenant), so `auto` took a snapshot.
      /^\| `\/ferry wipe-and-retry <reason>` \| restores the snapshot taken at \S+ and reruns from step 1 \|$/,
      '| `/ferry resume <reason>` | reruns from step 2 (index) with checkpoint "42" |',
      '| `/ferry accept-partial <reason>` | ends the migration as accepted-partial and keeps the tenant data as it is |',
      '| `/ferry abandon <reason>` | ends the migration as abandoned and keeps the tenant data as it is |',
    ]);
    const notices = tracker.comments.filter((c) => c.bodies[0]?.includes('is **held**'));
    assert.equal(notices.length, 1, 'one comment asks the operators to act');
    assert.equal(notices[0]!.bodies.length, 1);
    assertLines(notices[0]!.bodies[0]!, [
      '<!-- ferry:reply -->',
      `@olga: migration \`${id}\` is **held**: attempt 1 failed at step 2 (\`index\`, cause \`exit-code\`).`,
      '- `/ferry resume <reason>`',
    ]);

    // 3. Resume from the thread: attempt 2 runs from the failed step and succeeds.
    await deliverOk(ferry, kind, commentDelivery(thread, '/ferry resume disk on the source host was full, freed space', 'olga'));
    await waitForState(ferry, id, 'succeeded');
    await waitFor('the succeeded status', async () => {
      await outboxDrained(ferry);
      return (withMarker(tracker, `<!-- ferry:status:${id} -->`)[0]?.bodies.at(-1) ?? '').includes('— succeeded');
    });
    assert.equal(withMarker(tracker, `<!-- ferry:status:${id} -->`).length, 1);
    assertLines(withMarker(tracker, `<!-- ferry:status:${id} -->`)[0]!.bodies.at(-1)!, [
      `### Ferry: migration \`${id}\` — succeeded`,
      "Succeeded in attempt 2. Closing the issue removes the job's artifacts (scratch space, logs, snapshot); tenant data stays.",
      '- **Attempt:** 2',
    ]);
    const detail = (await ferry.api('GET', `/v1/migrations/${id}`)).body;
    const byKind = (k: string) => detail.events.find((e: { kind: string }) => e.kind === k);
    assert.equal(byKind('approve')?.actor, `${kind}:olga`);
    assert.equal(byKind('resume')?.actor, `${kind}:olga`);
    assert.equal(byKind('resume')?.reason, 'disk on the source host was full, freed space');

    // 4. Closing the issue tears the job's artifacts down and says what was removed.
    const before = tracker.comments.length;
    await deliverOk(ferry, kind, issueDelivery(thread, 'closed', body, 'alice'));
    await outboxDrained(ferry);
    assert.equal(tracker.comments.length, before + 1);
    const summary = current(tracker).at(-1)!;
    assert.equal(firstLine(summary), '<!-- ferry:closure -->');
    const artifacts = (await ferry.api('GET', `/v1/migrations/${id}`)).body.artifacts as Array<{ kind: string; state: string }>;
    assert.ok(artifacts.length > 0);
    assert.ok(
      artifacts.every((a) => a.state === 'removed'),
      'every artifact removed',
    );
    assertLines(summary, [
      '### Ferry: issue closed',
      `Removed ${artifacts.length} job artifacts:`,
      '| Migration | Kind | Artifact |',
      "Tenant data is not a job artifact and was left as it is. The migrations' history is kept. Reopening the issue recreates nothing.",
    ]);
    for (const a of artifacts) assert.ok(summary.includes(`| \`${id}\` | ${a.kind} |`), `summary lists the ${a.kind}`);

    // 5. Reopening recreates nothing; later edits and commands are answered with a note and ignored.
    const frozen = JSON.stringify((await ferry.api('GET', `/v1/migrations/${id}`)).body);
    await deliverOk(ferry, kind, issueDelivery(thread, 'reopened', body, 'alice'));
    await deliverOk(ferry, kind, issueDelivery(thread, 'edited', body.replace('256Mi', '512Mi'), 'alice'));
    await deliverOk(ferry, kind, commentDelivery(thread, '/ferry approve', 'olga'));
    await outboxDrained(ferry);
    assert.equal(JSON.stringify((await ferry.api('GET', `/v1/migrations/${id}`)).body), frozen, 'nothing changed');
    assert.equal((await migrationsOf(ferry, issue)).length, 1, 'nothing filed');
    const notes = current(tracker).slice(before + 1);
    assert.equal(notes.length, 3);
    assert.match(notes[0]!, /^<!-- ferry:reply -->\n@alice: this issue was closed, and reopening it recreates nothing/);
    assert.match(notes[1]!, /^<!-- ferry:reply -->\n@alice: this issue is closed, so Ferry ignores its request/);
    assert.match(notes[2]!, /^<!-- ferry:reply -->\n@olga: this issue is closed, so Ferry ignores commands in it/);

    // Nothing was ever posted twice.
    const creates = tracker.accepted.filter((r) => r.method === 'POST').map((r) => r.body);
    assert.equal(new Set(creates).size, creates.length);
  });
}
