/**
 * GET /v1/events: a `migration` event with the summary on every committed transition, `progress`
 * events for a running migration (polled every 2 s), only for the tenants the caller may see;
 * unauthenticated is 401; the streams are bounded per token (429) and in all (503), like log followers.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { call, removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry, writeTokensFile } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const SHOP = 'shop-filer-token-0123456789abcdef';
const OTHER = 'other-filer-token-0123456789abcdef';

interface Stream {
  readonly status: number;
  readonly contentType: string;
  readonly events: Array<{ event: string; data: any }>;
  readonly body: () => string;
  close(): void;
}

function open(url: string, token: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    let text = '';
    const events: Array<{ event: string; data: any }> = [];
    // eslint-disable-next-line prefer-const
    req = httpRequest(`${url}/v1/events`, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        text += chunk;
        pending += chunk;
        let end;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const frame = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
        }
      });
      res.on('error', () => undefined);
      resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), events, body: () => text, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('event stream', () => {
  let ferry: Ferry;
  let tokensDir: string;
  const streams: Stream[] = [];

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'shop-team', role: 'filer', token: SHOP, tenants: ['shop'] },
      { name: 'other', role: 'filer', token: OTHER },
    ]);
    ferry = await startFerry({ tokensFile, maxFollowers: 4, maxFollowersPerToken: 2 });
    for (const t of ['shop', 'blog']) assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  });

  after(async () => {
    for (const s of streams) s.close();
    for (const t of ['shop', 'blog']) writeFileSync(join(ferry.dataDir, 'tenants', t, 'go'), '');
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('no token is 401', async () => {
    assertProblem(await call(ferry.url, null, 'GET', '/v1/events'), 401, 'FERRY_UNAUTHENTICATED');
  });

  void test('transitions and progress arrive as events, each only to who may see its tenant', async () => {
    const all = await open(ferry.url, ferry.token);
    const shopOnly = await open(ferry.url, SHOP);
    streams.push(all, shopOnly);
    assert.equal(all.status, 200);
    assert.match(all.contentType, /^text\/event-stream/);
    const script =
      'echo "::ferry::progress 2/4"; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done; echo "::ferry::progress 4/4"';
    const blog = (await ferry.api('POST', '/v1/migrations', request('blog', [{ name: 'work', run: sh(script) }]))).body.id;
    assert.equal((await ferry.api('POST', `/v1/migrations/${blog}/approve`, {})).status, 200);
    await waitFor('a progress event of 2/4', () => all.events.find((e) => e.event === 'progress' && e.data.id === blog && e.data.progress.done === 2), 10_000);
    // One event per committed transition: approval and the gate commit together, so `approved` may not be seen on its own.
    const states = all.events.filter((e) => e.event === 'migration' && e.data.id === blog).map((e) => e.data.state);
    assert.deepEqual(
      states.filter((st) => st !== 'approved'),
      ['queued', 'running'],
    );
    const summary = all.events.find((e) => e.event === 'migration')!.data;
    assert.deepEqual(Object.keys(summary).sort(), ['attempts', 'createdAt', 'heldCause', 'id', 'issue', 'peak', 'progress', 'state', 'tenant', 'updatedAt']);
    writeFileSync(join(ferry.dataDir, 'tenants', 'blog', 'go'), '');
    await waitFor('the succeeded event', () => all.events.some((e) => e.event === 'migration' && e.data.id === blog && e.data.state === 'succeeded'), 10_000);
    assert.equal(shopOnly.events.filter((e) => e.data.tenant === 'blog').length, 0, 'a token limited to shop hears nothing of blog');
    const shop = (await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }]))).body.id;
    assert.equal((await ferry.api('POST', `/v1/migrations/${shop}/approve`, {})).status, 200);
    await waitFor('the shop events on the limited stream', () => shopOnly.events.some((e) => e.data.id === shop && e.data.state === 'succeeded'), 10_000);
    for (const s of [all, shopOnly]) s.close();
    await waitFor('the streams to be released', () => ferry.service.app.eventStreamCount() === 0);
  });

  void test('streams are bounded per token (429) and in all (503)', async () => {
    const mine = [await open(ferry.url, OTHER), await open(ferry.url, OTHER)];
    streams.push(...mine);
    assert.deepEqual(
      mine.map((s) => s.status),
      [200, 200],
    );
    const third = await call(ferry.url, OTHER, 'GET', '/v1/events');
    assertProblem(third, 429, 'FERRY_TOO_MANY_FOLLOWERS');
    const more = [await open(ferry.url, ferry.token), await open(ferry.url, SHOP)];
    streams.push(...more);
    assertProblem(await call(ferry.url, ferry.token, 'GET', '/v1/events'), 503, 'FERRY_BUSY');
    for (const s of streams) s.close();
    await waitFor('the streams to be released', () => ferry.service.app.eventStreamCount() === 0);
    const again = await open(ferry.url, OTHER);
    streams.push(again);
    assert.equal(again.status, 200, 'a closed stream frees its place');
    again.close();
  });
});
