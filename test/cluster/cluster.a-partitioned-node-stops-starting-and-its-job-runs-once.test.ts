/**
 * A real partition: n3 runs inside a network namespace and reaches PostgreSQL (a private instance
 * of this test's own, on the host side of a veth pair) only through the veth. While its job runs
 * the link is cut: n3 starts nothing (a migration queued for another of its tenants stays queued),
 * the other nodes mark it `lost` after nodeLostAfter and hold its migration `lost`; the job ends
 * while the link is down. The link comes back: n3 records the job's real outcome once, as a
 * `late-outcome` event on the held migration (no second hold, no succeed), the job ran exactly
 * once, and n3 serves its other tenant again.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { request, sh, waitFor } from '../support/harness.ts';
import {
  approve,
  file,
  migration,
  nodesOf,
  pause,
  readIn,
  registerTenant,
  startCluster,
  supervisorsUnder,
  tenantDataDir,
  waitForNodeState,
  waitForState,
  type Cluster,
} from '../support/cluster.ts';
import { requireNetns, startPartition, type Partition } from '../support/netns.ts';

void test('a node cut off from PostgreSQL starts nothing, is held lost by the others, and its job runs exactly once', async (t) => {
  if (!requireNetns(t)) return;
  let partition: Partition | null = null;
  let cluster: Cluster | null = null;
  let cut = false;
  try {
    partition = await startPartition();
    const { netns, postgres } = partition;
    const database = await postgres.createDatabase();
    cluster = await startCluster({
      nodes: [{ name: 'n1' }, { name: 'n2' }, { name: 'n3', netns }],
      lostAfter: '3s',
      databaseUrl: (spec) => (spec.netns ? postgres.url(database, netns.hostIp) : postgres.url(database)),
    });
    const c = cluster;
    const [n1, n2, n3] = (['n1', 'n2', 'n3'] as const).map((n) => c.node(n));
    const shop = tenantDataDir(c, await registerTenant(n1!, 'shop', { node: 'n3' }));
    const mall = tenantDataDir(c, await registerTenant(n2!, 'mall', { node: 'n3' }));

    const first = await file(
      n1!,
      request('shop', [
        {
          name: 'long',
          run: sh(
            'echo run >> "$FERRY_TENANT_DATA/ledger"; touch "$FERRY_TENANT_DATA/started"; while [ ! -e "$FERRY_TENANT_DATA/go" ]; do sleep 0.05; done; echo done >> "$FERRY_TENANT_DATA/ledger"',
          ),
        },
      ]),
    );
    await approve(n2!, first);
    await waitFor('the job to start on n3', () => readIn(shop, 'started') !== null, 30_000);
    assert.equal((await migration(n1!, first)).attempts[0]?.node, 'n3');

    netns.cut();
    cut = true;
    // While cut: another tenant of n3 gets a migration; n3 must not start it.
    const other = await file(
      n1!,
      request('mall', [{ name: 'other', run: sh('echo other >> "$FERRY_TENANT_DATA/ledger"') }], { issue: 'github:acme/platform#2' }),
    );
    await approve(n2!, other);

    const held = await waitForState(n1!, first, 'held', 30_000);
    assert.equal(held.heldCause, 'lost');
    assert.match(held.heldDetail ?? '', /\bn3\b/, `the detail names the node: ${held.heldDetail}`);
    assert.equal(held.events.filter((e) => e.kind === 'fail').length, 1);
    assert.equal((await nodesOf(n2!)).find((n) => n.name === 'n3')?.state, 'lost');

    // The job lives on behind the cut and ends there.
    assert.equal(supervisorsUnder(n3!.dataDir).length, 1, 'the job still runs on the cut-off node');
    writeFileSync(join(shop, 'go'), '');
    await waitFor('the job to end behind the cut', () => supervisorsUnder(n3!.dataDir).length === 0, 30_000);
    await pause(1000);
    const waiting = await migration(n2!, other);
    assert.equal(waiting.state, 'queued', 'the cut-off node started nothing');
    assert.equal(waiting.attempts.length, 0);
    assert.equal(readIn(mall, 'ledger'), null);

    netns.restore();
    cut = false;
    const late = await waitFor(
      'n3 to record the late outcome once the link is back',
      async () => {
        const m = await migration(n1!, first);
        return m.events.some((e) => e.kind === 'late-outcome') ? m : null;
      },
      60_000,
    );
    assert.equal(late.state, 'held', 'the late outcome does not move the migration');
    assert.equal(late.heldCause, 'lost');
    assert.equal(late.attempts.length, 1);
    assert.equal(late.events.filter((e) => e.kind === 'late-outcome').length, 1, 'the outcome is recorded once');
    assert.equal(late.events.filter((e) => e.kind === 'fail').length, 1, 'held once');
    assert.equal(late.events.filter((e) => e.kind === 'succeed').length, 0, 'n3 recorded no transition after the takeover');
    assert.equal(readIn(shop, 'ledger'), 'run\ndone\n', 'the job ran exactly once');

    // n3 is back and serves its other tenant: once, on n3.
    await waitForNodeState(n1!, 'n3', 'up', 30_000);
    const ran = await waitForState(n1!, other, 'succeeded', 60_000);
    assert.equal(ran.attempts.length, 1);
    assert.equal(ran.attempts[0]!.node, 'n3');
    assert.equal(readIn(mall, 'ledger'), 'other\n');
    const again = await migration(n2!, first);
    assert.equal(again.events.filter((e) => e.kind === 'late-outcome').length, 1, 'still recorded once');
    assert.equal(readIn(shop, 'ledger'), 'run\ndone\n');

    // Last, after the partition's guarantees: "any node answers" for a node on another network. The
    // log of n3's job is on n3; asked of n1 it is forwarded to the address n3 registered.
    const advertised = (await nodesOf(n1!)).find((n) => n.name === 'n3')!.url;
    const log = await n1!.api('GET', `/v1/migrations/${other}/logs?attempt=1`);
    assert.equal(log.status, 200, `n1 forwards to n3 (registered at ${advertised}, listening on 0.0.0.0 in its namespace): ${JSON.stringify(log.body)}`);
  } catch (err) {
    if (cluster) console.error(`--- output of the nodes\n${cluster.output()}\n--- end of node output`);
    throw err;
  } finally {
    if (cut && partition) partition.netns.restore();
    if (cluster) await cluster.stop();
    partition?.remove();
  }
});
