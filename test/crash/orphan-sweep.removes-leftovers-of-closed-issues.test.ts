/** On start, Ferry removes what carries its labels and belongs to a closed issue, and nothing else. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeDir, request, sh, startFerry, tempDir, waitFor } from '../support/harness.ts';

void test('the orphan sweep at start removes labelled leftovers of closed issues and keeps the rest', async () => {
  const dataDir = tempDir('ferry-orphans-');
  try {
    let f = await startFerry({ dataDir });
    await f.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' } });
    const closedIssue = 'github:acme/platform#5';
    const filed = await f.api('POST', '/v1/migrations', request('shop', [{ name: 'x', run: sh('true') }], { issue: closedIssue }));
    await f.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    await waitFor('success', async () => (await f.api('GET', `/v1/migrations/${filed.body.id}`)).body.state === 'succeeded');
    await f.api('POST', `/v1/issues/${encodeURIComponent(closedIssue)}/close`, {});
    await f.stop();

    // Leftovers as a crash could leave them: a labelled scratch folder of the closed issue, and one
    // of an issue this Ferry does not know (another Ferry's, perhaps), and the tenant's own data.
    const orphan = join(dataDir, 'scratch', filed.body.id);
    mkdirSync(orphan, { recursive: true });
    writeFileSync(`${orphan}.ferry.json`, JSON.stringify({ migrationId: filed.body.id, issue: closedIssue }));
    const foreign = join(dataDir, 'scratch', 'm-foreign-00000000');
    mkdirSync(foreign, { recursive: true });
    writeFileSync(`${foreign}.ferry.json`, JSON.stringify({ migrationId: 'm-foreign-00000000', issue: 'github:other/repo#1' }));
    writeFileSync(join(dataDir, 'tenants', 'shop', 'keep'), 'data');

    f = await startFerry({ dataDir });
    await f.stop();
    assert.equal(existsSync(orphan), false, 'leftover of a closed issue removed');
    assert.equal(existsSync(`${orphan}.ferry.json`), false);
    assert.equal(existsSync(foreign), true, 'objects of unknown issues are left alone');
    assert.equal(existsSync(join(dataDir, 'tenants', 'shop', 'keep')), true, 'tenant data untouched');
  } finally {
    removeDir(dataDir);
  }
});
