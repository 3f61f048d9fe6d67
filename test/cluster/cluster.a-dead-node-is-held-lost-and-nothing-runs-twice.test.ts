/**
 * A node killed and not restarted: after nodeLostAfter (3 s here) the other nodes mark it `lost`
 * and hold its running migration with cause `lost`, naming the node; the tenant's next migration
 * starts nowhere (not on another node, not after the restart while the old job lives). When the
 * node returns and the old job ends, its real outcome is an event (`late-outcome`) on the held
 * migration, which stays held; nothing ran twice. The operator's decision frees the tenant.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, sh, waitFor } from '../support/harness.ts';
import {
  approve,
  clusterTest,
  file,
  migration,
  nodesOf,
  pause,
  readIn,
  registerTenant,
  supervisorsUnder,
  tenantDataDir,
  waitForNodeState,
  waitForState,
} from '../support/cluster.ts';

clusterTest(
  'a node dead past nodeLostAfter: held lost by the others, nothing started elsewhere, late outcome on return',
  { nodes: 3, lostAfter: '3s' },
  async (cluster) => {
    const [n1, n2, n3] = (['n1', 'n2', 'n3'] as const).map((n) => cluster.node(n)) as [
      ReturnType<typeof cluster.node>,
      ReturnType<typeof cluster.node>,
      ReturnType<typeof cluster.node>,
    ];
    const data = tenantDataDir(cluster, await registerTenant(n2, 'shop'));
    const first = await file(
      n1,
      request('shop', [
        {
          name: 'long',
          run: sh('echo run >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done'),
        },
      ]),
    );
    await approve(n1, first);
    await waitFor('the job to start on n2', () => readIn(data, 'started') !== null);
    const next = await file(
      n3,
      request('shop', [{ name: 'next', run: sh('echo next >> "$FERRY_TENANT_DATA/next-ledger"') }], { issue: 'github:acme/platform#2' }),
    );
    await approve(n3, next);
    assert.equal((await migration(n3, next)).state, 'queued', 'the next migration waits for the tenant');

    await n2.kill('SIGKILL');
    const held = await waitForState(n1, first, 'held', 30_000);
    assert.equal(held.heldCause, 'lost');
    assert.match(held.heldDetail ?? '', /\bn2\b/, `the detail names the node: ${held.heldDetail}`);
    assert.match(held.heldDetail ?? '', /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, `the detail says when it was last seen: ${held.heldDetail}`);
    assert.equal(held.attempts.length, 1);
    assert.equal(held.attempts[0]!.node, 'n2');
    assert.equal(held.events.filter((e) => e.kind === 'fail').length, 1, 'held once, by one node');
    for (const via of [n1, n3]) assert.equal((await nodesOf(via)).find((n) => n.name === 'n2')?.state, 'lost', `${via.name} sees n2 lost`);
    assert.equal(supervisorsUnder(n2.dataDir).length, 1, 'its job still runs without its node');

    await pause(1500); // scheduling passes on n1 and n3
    const waiting = await migration(n3, next);
    assert.equal(waiting.state, 'queued', 'the next migration of the tenant starts nowhere');
    assert.equal(waiting.attempts.length, 0);
    assert.equal(readIn(data, 'next-ledger'), null);

    // n2 returns while the old job still runs: it keeps the tenant blocked, and nothing re-runs.
    await n2.restart();
    await waitForNodeState(n1, 'n2', 'up');
    await pause(1500);
    assert.equal((await migration(n1, next)).state, 'queued', 'the live job of the held migration keeps its tenant blocked');
    assert.equal(readIn(data, 'next-ledger'), null);
    const stillHeld = await migration(n1, first);
    assert.equal(stillHeld.state, 'held');
    assert.equal(stillHeld.attempts.length, 1);

    // The old job ends: n2 records its real outcome as an event; the migration stays held.
    writeFileSync(join(data, 'go'), '');
    const late = await waitFor(
      'the late outcome to be recorded',
      async () => {
        const m = await migration(n3, first);
        return m.events.some((e) => e.kind === 'late-outcome') ? m : null;
      },
      30_000,
    );
    assert.equal(late.state, 'held', 'a late outcome does not move the migration');
    assert.equal(late.heldCause, 'lost');
    assert.equal(late.events.filter((e) => e.kind === 'late-outcome').length, 1);
    assert.equal(late.events.filter((e) => e.kind === 'fail').length, 1, 'no second hold');
    assert.equal(late.events.filter((e) => e.kind === 'succeed').length, 0, 'no outcome recorded as a transition');
    assert.equal(late.attempts.length, 1);
    assert.equal(readIn(data, 'ledger'), 'run\n', 'the job ran once');
    assert.equal((await migration(n1, next)).state, 'queued', 'the held migration still holds the tenant');

    // Only an operator frees the tenant; then the next migration runs, on n2, once.
    const act = await n1.api('POST', `/v1/migrations/${first}/actions`, { action: 'abandon', reason: 'the node died; the job finished anyway' });
    assert.equal(act.status, 200, JSON.stringify(act.body));
    const done = await waitForState(n3, next, 'succeeded');
    assert.equal(done.attempts.length, 1);
    assert.equal(done.attempts[0]!.node, 'n2');
    assert.equal(readIn(data, 'next-ledger'), 'next\n');
    assert.equal(readIn(data, 'ledger'), 'run\n');
  },
);
