/**
 * The tracker outbox of a cluster: three nodes, each with the same GitHub settings, all pointed at
 * one fake tracker that answers slowly (so that senders on several nodes would overlap if they
 * could) and refuses the first comment once. Deliveries arrive through different nodes; every
 * comment is created exactly once on the tracker, status edits go to that one comment, and a
 * delivery replayed through another node is a duplicate there too.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import pg from 'pg';
import { body as rawBody } from '../tracker/helpers.ts';
import { commentDelivery, issueDelivery, refOf, requestBody, SECRET, signedHeaders, type Delivery, type ThreadRef } from '../tracker/integration/thread-kit.ts';
import { clusterTest, pause, registerTenant, waitForState, type Cluster, type ClusterNode } from '../support/cluster.ts';
import { waitFor } from '../support/harness.ts';

interface Comment {
  id: number;
  bodies: string[];
}

/** A GitHub-like comments API that takes 150 ms per request; `failNext` refuses that many creates with a 500. */
async function slowTracker() {
  const comments: Comment[] = [];
  const state = { failNext: 1, creates: 0 };
  let next = 1000;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      setTimeout(() => {
        const text = (JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { body?: string }).body ?? '';
        const send = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(payload));
        };
        const edit = /\/comments\/(\d+)$/.exec(req.url ?? '');
        if (req.method === 'POST' && /\/comments$/.test(req.url ?? '')) {
          state.creates += 1;
          if (state.failNext > 0) {
            state.failNext -= 1;
            return send(500, { message: 'Server Error' });
          }
          const c = { id: next++, bodies: [text] };
          comments.push(c);
          return send(201, { id: c.id, body: text });
        }
        if (req.method === 'PATCH' && edit) {
          const c = comments.find((x) => x.id === Number(edit[1]));
          if (!c) return send(404, { message: 'Not Found' });
          c.bodies.push(text);
          return send(200, { id: c.id, body: text });
        }
        return send(404, { message: 'Not Found' });
      }, 150);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, comments, state, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function deliver(node: ClusterNode, delivery: Delivery, deliveryId = randomUUID()) {
  const raw = rawBody(delivery.payload);
  const headers = { 'content-type': 'application/json', ...(await signedHeaders('github', delivery.event, raw, deliveryId)) };
  const res = await fetch(`${node.url}/v1/hooks/github`, { method: 'POST', headers, body: new Uint8Array(raw) });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // text
  }
  return { status: res.status, body: parsed, deliveryId };
}

async function pendingOutbox(cluster: Cluster): Promise<number> {
  const client = new pg.Client({ connectionString: cluster.databaseUrl });
  await client.connect();
  try {
    const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM tracker_outbox WHERE state = 'pending'`);
    return Number(r.rows[0]!.n);
  } finally {
    await client.end();
  }
}

const tracker = await slowTracker();
after(() => tracker.close());
const ENV = {
  FERRY_GITHUB_WEBHOOK_SECRET: SECRET,
  FERRY_GITHUB_API_URL: tracker.url,
  FERRY_GITHUB_TOKEN: 'bot-token',
  FERRY_GITHUB_BOT_USER: 'ferry-bot',
  FERRY_GITHUB_FILERS: 'alice',
  FERRY_GITHUB_OPERATORS: 'olga',
  FERRY_GITHUB_ADMINS: 'root',
  FERRY_OUTBOX_RETRY_BASE_MS: '50',
  FERRY_OUTBOX_RETRY_MAX_MS: '500',
};

clusterTest('each thread comment is created once on the tracker, whichever nodes took the deliveries and sent', { nodes: 3, env: ENV }, async (cluster) => {
  {
    const [n1, n3] = (['n1', 'n3'] as const).map((n) => cluster.node(n)) as [ClusterNode, ClusterNode];
    await registerTenant(n1, 'shop', { node: 'n2' });
    const thread: ThreadRef = { kind: 'github', repo: 'acme/platform', number: 77 };
    const issue = refOf(thread);

    const opened = await deliver(n1, issueDelivery(thread, 'opened', requestBody([{ name: 'hello', run: ['sh', '-c', 'echo hi'] }]), 'alice'));
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const [m] = (await n3.api<Array<{ id: string }>>('GET', `/v1/migrations?issue=${encodeURIComponent(issue)}`)).body;
    assert.ok(m, 'the request from the thread is filed');
    const approved = await deliver(n3, commentDelivery(thread, '/ferry approve', 'olga'));
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const done = await waitForState(n1, m.id, 'succeeded');
    assert.equal(done.attempts[0]!.node, 'n2');

    const status = `<!-- ferry:status:${m.id} -->`;
    await waitFor(
      'the outbox to drain with the final status on the thread',
      async () =>
        (await pendingOutbox(cluster)) === 0 && tracker.comments.some((c) => c.bodies[0]!.startsWith(status) && c.bodies.at(-1)!.includes('succeeded')),
      30_000,
    );
    await pause(1000); // every node's sender gets its chance to send something twice
    const firstLines = tracker.comments.map((c) => c.bodies[0]!.split('\n')[0]!);
    assert.deepEqual(
      firstLines.filter((l, i) => firstLines.indexOf(l) !== i),
      [],
      `no comment was created twice:\n${firstLines.join('\n')}`,
    );
    assert.ok(firstLines.includes(`<!-- ferry:verdict:${m.id} -->`), `the verdict is on the thread:\n${firstLines.join('\n')}`);
    assert.equal(tracker.comments.filter((c) => c.bodies[0]!.startsWith(status)).length, 1, 'one status comment, edited in place');
    assert.equal(tracker.state.creates, tracker.comments.length + 1, 'one refused create, every other create accepted: nothing sent twice');

    // The approval delivered again through another node: a duplicate, nothing sent.
    const before = tracker.state.creates;
    const replay = await deliver(n1, commentDelivery(thread, '/ferry approve', 'olga'), approved.deliveryId);
    assert.equal(replay.status, 200);
    assert.equal(replay.body.outcome, 'duplicate', JSON.stringify(replay.body));
    await pause(500);
    assert.equal(tracker.state.creates, before);
  }
});
