/** With isolation off, the migration records `isolated: false`, and `ferry show` says so in words. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { removeDir, request, sh, startFerry, waitFor } from '../support/harness.ts';
import { runCli } from './cli-process.ts';

void test('a migration run unconfined shows isolated: false, and ferry show says it was not confined', async (t) => {
  const ferry = await startFerry({ isolation: 'off' });
  t.after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });
  assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '500m', memory: '1Gi' } })).status, 201);
  const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'noop', run: sh('true') }]));
  assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`)).status, 200);
  const done = await waitFor('succeeded', async () => {
    const m = (await ferry.api('GET', `/v1/migrations/${filed.body.id}`)).body;
    return m.state === 'succeeded' ? m : null;
  });
  assert.equal(done.isolated, false);
  const shown = await runCli(['--url', ferry.url, '--token', ferry.token, 'show', filed.body.id], { cwd: ferry.dataDir });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /isolation: NOT confined/);
});
