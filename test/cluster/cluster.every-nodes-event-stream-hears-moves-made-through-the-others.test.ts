/**
 * Any node answers, the console's live updates included: a migration filed and approved through n2,
 * for a tenant on n2, reaches the event stream (GET /v1/events) of n1 at each move, through the
 * nodes' notices.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request, sh, waitFor } from '../support/harness.ts';
import { approve, clusterTest, file, registerTenant, waitForState } from '../support/cluster.ts';

function follow(url: string, token: string): Promise<{ states: (id: string) => string[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const seen: Array<{ id: string; state: string }> = [];
    let pending = '';
    const req: ClientRequest = httpRequest(`${url}/v1/events`, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        for (let end; (end = pending.indexOf('\n\n')) >= 0;) {
          const frame = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const data = /^event: migration\ndata: (.*)$/m.exec(frame)?.[1];
          if (data) seen.push(JSON.parse(data) as { id: string; state: string });
        }
      });
      res.on('error', () => undefined);
      resolve({ states: (id) => seen.filter((e) => e.id === id).map((e) => e.state), close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

clusterTest('moves made through n2 reach the event stream of n1', { nodes: 2 }, async (cluster) => {
  const [n1, n2] = ['n1', 'n2'].map((n) => cluster.node(n));
  await registerTenant(n2!, 'shop');
  const stream = await follow(n1!.url, cluster.token);
  try {
    const id = await file(n2!, request('shop', [{ name: 'one', run: sh('true') }]));
    await approve(n2!, id);
    await waitForState(n2!, id, 'succeeded');
    const states = await waitFor('n1 to hear the success', () => (stream.states(id).includes('succeeded') ? stream.states(id) : null), 15_000);
    for (const state of ['queued', 'running', 'succeeded']) assert.ok(states.includes(state), `n1's stream heard ${state}: ${JSON.stringify(states)}`);
  } finally {
    stream.close();
  }
});
