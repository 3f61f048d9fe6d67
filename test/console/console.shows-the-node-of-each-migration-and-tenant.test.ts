/**
 * The console with two nodes on one PostgreSQL database, signed in on node `a`, for a tenant living
 * on node `b`: the migration page names the node (and links the migration on b's own console), each
 * attempt its node, and the log panel says why a's console session cannot read a log that is on b;
 * the tenants page lists every node with its state and what runs on it, and each tenant's node.
 * Skips (loudly) without PostgreSQL or Chromium; fails under CI=true.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeDir, request, startFerry, waitFor } from '../support/harness.ts';
import { requirePostgres, TestDatabase } from '../support/postgres.ts';
import { assertAccessible, browserMissing, launchChromium, newPage, signIn, waitingJob } from './browser.ts';

const missing = browserMissing();

void test('the console shows the node of a migration, of its attempts and of each tenant, and every node', { skip: missing }, async (t) => {
  if (!(await requirePostgres(t))) return;
  const db = new TestDatabase();
  await db.ensure();
  const a = await startFerry({ databaseUrl: db.url, node: 'a' });
  const b = await startFerry({ databaseUrl: db.url, node: 'b', token: a.token });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    try {
      writeFileSync(join(b.dataDir, 'tenants', 'shop', 'go'), '');
    } catch {
      // never registered
    }
    await b.service.runner.idle();
    await b.stop();
    await a.stop();
    await db.drop();
    removeDir(a.dataDir);
    removeDir(b.dataDir);
  });

  assert.equal((await b.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
  const filed = await a.api('POST', '/v1/migrations', request('shop', [{ name: 'wait', run: waitingJob('echo started'), timeout: '5m' }]));
  assert.equal(filed.status, 201, JSON.stringify(filed.body));
  const id = filed.body.id as string;
  assert.equal((await a.api('POST', `/v1/migrations/${id}/approve`, {})).status, 200);
  await waitFor('the migration to run on b', async () => (await a.api('GET', `/v1/migrations/${id}`)).body.state === 'running');

  const problems: string[] = [];
  const page = await newPage(browser, problems);
  await signIn(page, a.url, a.token);

  await page.goto(`${a.url}/#/m/${id}`);
  const node = page.locator('#node');
  await node.filter({ hasText: 'b' }).waitFor();
  const link = node.getByRole('link', { name: "open this migration on b's console" });
  assert.equal(await link.getAttribute('href'), `${b.url}/#/m/${id}`);
  assert.match((await page.getByRole('table', { name: 'Attempts' }).textContent()) ?? '', /running\s*b\s*Show log/);
  await page.locator('#log-state').filter({ hasText: 'console session is known only to node a' }).waitFor();
  await assertAccessible(page, 'the migration page of a migration on another node');

  await page.goto(`${a.url}/#/tenants`);
  const nodes = page.getByRole('table', { name: 'Nodes' });
  await nodes.waitFor();
  assert.match((await nodes.locator('tr', { hasText: 'this one' }).textContent()) ?? '', /^a \(this one\)\s*up/);
  const bRow = (await nodes.locator('tbody tr').nth(1).textContent()) ?? '';
  assert.match(bRow, new RegExp(`^b\\s*up.*process.*${id}`));
  assert.match((await page.getByRole('table', { name: 'Tenants' }).locator('tr', { hasText: 'shop' }).textContent()) ?? '', /^shop\s*b/);
  await assertAccessible(page, 'the tenants page with two nodes');
  // The log's 503 (the session cannot be carried to b) is the one failed load the browser may report.
  assert.deepEqual(
    problems.filter((p) => !/status of 503/.test(p)),
    [],
    'no script error or CSP violation in the browser',
  );
});
