/** An issue closure interrupted by a crash (recorded, not yet carried out) finishes on the next start. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { removeDir, request, sh, startFerry, tempDir, waitFor } from '../support/harness.ts';

void test('a closure recorded before a crash cancels and deprovisions on the next start, keeping tenant data', async () => {
  const dataDir = tempDir('ferry-closure-');
  try {
    let f = await startFerry({ dataDir });
    await f.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' } });
    const issue = 'github:acme/platform#9';
    const filed = await f.api('POST', '/v1/migrations', request('shop', [{ name: 'x', run: sh('echo data > "$FERRY_TENANT_DATA/kept"; exit 1') }], { issue }));
    await f.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    await waitFor('held', async () => (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body.state === 'held');
    // The crash: the closure is recorded, then Ferry dies before cancelling or removing anything.
    await f.service.store.markIssueClosed(issue, 'operator', new Date());
    await f.stop();

    f = await startFerry({ dataDir });
    const m = (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body;
    assert.equal(m.state, 'cancelled');
    assert.ok(m.artifacts.length >= 3);
    assert.ok(
      m.artifacts.every((a: { state: string }) => a.state === 'removed'),
      JSON.stringify(m.artifacts),
    );
    assert.equal(await f.service.store.issuesPendingTeardown().then((l) => l.length), 0);
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(`${dataDir}/tenants/shop/kept`, 'utf8'), 'data\n');
    await f.stop();
  } finally {
    removeDir(dataDir);
  }
});
