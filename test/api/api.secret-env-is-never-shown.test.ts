/**
 * An env value given as {secret: "..."} is never shown: not in the filing answer, GET
 * /v1/migrations/:id, the list, nor anywhere in the log served (one-shot or followed), even when
 * the job prints it cut in two writes, or as its checkpoint.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';

const SECRET = 's3cr3t-Value-0042';

void describe('secret env values', () => {
  let ferry: Ferry;
  let id: string;
  let filedText: string;

  before(async () => {
    ferry = await startFerry();
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const script = [
      'echo "token=$DB_PASSWORD plain=$PLAIN"',
      // Cut in two writes with a pause: the log grows with half a secret at its end.
      'printf "half=%s" "$(printf %s "$DB_PASSWORD" | cut -c1-6)"',
      'sleep 0.5',
      'printf "%s\\n" "$(printf %s "$DB_PASSWORD" | cut -c7-)"',
      'echo "::ferry::checkpoint at-$DB_PASSWORD"',
      'sleep 0.5',
      'echo done',
    ].join('; ');
    const filed = await ferry.api(
      'POST',
      '/v1/migrations',
      request('shop', [{ name: 'echo', run: sh(script) }], { env: { DB_PASSWORD: { secret: SECRET }, PLAIN: 'visible' } }),
    );
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    filedText = JSON.stringify(filed.body);
    id = filed.body.id;
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('the filing answer shows the name, marks it secret, and never the value', () => {
    assert.ok(!filedText.includes(SECRET), filedText);
    const body = JSON.parse(filedText);
    assert.equal(body.request.env.DB_PASSWORD, '(secret)');
    assert.equal(body.request.env.PLAIN, 'visible');
  });

  void test('the job gets the value; the log served masks it, followed or not', async () => {
    const approved = await ferry.api('POST', `/v1/migrations/${id}/approve`, {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const followed = waitFor('the attempt to start', async () => (await ferry.api('GET', `/v1/migrations/${id}`)).body.attempts.length >= 1).then(() =>
      fetch(`${ferry.url}/v1/migrations/${id}/logs?follow=true`, { headers: { authorization: `Bearer ${ferry.token}` } }).then((r) => r.text()),
    );
    await waitFor('the migration to succeed', async () => {
      const m = await ferry.api('GET', `/v1/migrations/${id}`);
      if (m.body.state === 'held') throw new Error(JSON.stringify(m.body.attempts));
      return m.body.state === 'succeeded';
    });
    const follow = await followed;
    const once = (await ferry.api('GET', `/v1/migrations/${id}/logs`)).body as string;
    for (const text of [follow, once]) {
      assert.ok(!text.includes(SECRET), text);
      assert.ok(!text.includes(SECRET.slice(6)), `not even the second half after the first: ${text}`);
      assert.match(text, /token=\(secret\) plain=visible/);
      assert.match(text, /done/);
    }
  });

  void test('GET /v1/migrations/:id and the list never show it (checkpoint included)', async () => {
    const detail = await ferry.api('GET', `/v1/migrations/${id}`);
    const text = JSON.stringify(detail.body);
    assert.ok(!text.includes(SECRET), text);
    assert.equal(detail.body.request.env.DB_PASSWORD, '(secret)');
    assert.deepEqual(detail.body.request.secretEnv, ['DB_PASSWORD']);
    if (detail.body.checkpoint) assert.equal(detail.body.checkpoint.text, 'at-(secret)');
    const list = JSON.stringify((await ferry.api('GET', '/v1/migrations')).body);
    assert.ok(!list.includes(SECRET));
  });
});
