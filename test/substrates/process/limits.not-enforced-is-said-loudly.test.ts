/** Where no cgroup can be used, Ferry still runs jobs, says so at start, and marks each migration. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileConfig } from '../../../src/config.ts';
import { startService } from '../../../src/service.ts';
import { call, removeDir, request, sh, tempDir, waitFor } from '../../support/harness.ts';

void test('with cgroups off, the start log warns and migrations carry limitsEnforced: false', async () => {
  const dataDir = tempDir('ferry-nolimits-');
  const logs: string[] = [];
  const service = await startService(compileConfig({ flags: { dataDir, port: 0, cgroups: 'off' }, env: {} }), (level, msg) => logs.push(`${level} ${msg}`));
  try {
    assert.ok(
      logs.some((l) => l.startsWith('warn LIMITS NOT ENFORCED')),
      logs.join('\n'),
    );
    const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
    const api = (method: string, path: string, body?: unknown) => call(service.url, token, method, path, body);
    await api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '512Mi' } });
    const filed = await api('POST', '/v1/migrations', request('shop', [{ name: 'x', run: sh('true') }]));
    await api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
    const m = await waitFor('success', async () => {
      const r = (await api('GET', `/v1/migrations/${filed.body.id}`)).body;
      return r.state === 'succeeded' ? r : null;
    });
    assert.equal(m.limitsEnforced, false);
    const log = (await api('GET', `/v1/migrations/${filed.body.id}/logs`)).body as string;
    assert.match(log, /limits NOT enforced/);
  } finally {
    await service.stop();
    removeDir(dataDir);
  }
});
