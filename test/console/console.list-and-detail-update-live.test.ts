/**
 * Watching migrations in the console, against real jobs: the list shows a running and a held
 * migration (held first, marked) and updates without a reload when the running one finishes; the
 * detail page shows the admission verdict, the attempts, the progress bar and a log line the job
 * printed after the page was opened; the tenants page shows the holder and the node's capacity.
 * axe-core finds no serious or critical violation on any page; screenshots go to test-output/console/.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';
import { assertAccessible, browserMissing, launchChromium, newPage, screenshot, signIn } from './browser.ts';

const missing = browserMissing();
const LIVE_LINE = 'this line was printed after the page opened';

void describe('console: list and detail update live', { skip: missing }, () => {
  let ferry: Ferry;
  let browser: Browser;
  let page: Page;
  let held: string;
  let running: string;
  let done: string;
  const problems: string[] = [];
  const go = (tenant: string, name: string) => writeFileSync(join(ferry.dataDir, 'tenants', tenant, name), '');

  before(async () => {
    ferry = await startFerry();
    for (const t of ['shop', 'blog', 'wiki'])
      assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const file = async (tenant: string, issue: string, steps: Array<{ name: string; run: string[]; timeout?: string }>) => {
      const filed = await ferry.api('POST', '/v1/migrations', request(tenant, steps, { issue }));
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
      return filed.body.id as string;
    };
    done = await file('wiki', 'github:acme/platform#5', [{ name: 'copy', run: sh('echo copied') }]);
    held = await file('shop', 'github:acme/platform#1', [
      { name: 'copy-files', run: sh('echo copying; echo "::ferry::checkpoint batch-4"; echo "disk quota exceeded" >&2; exit 3') },
      { name: 'reindex', run: sh('true') },
    ]);
    const wait = (file: string) => `i=0; while [ ! -f "$FERRY_TENANT_DATA/${file}" ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.1; done`;
    running = await file('blog', 'github:acme/platform#2', [
      { name: 'prepare', run: sh('echo prepared') },
      {
        name: 'rebuild-index',
        run: sh(
          `echo started; echo "::ferry::progress 3/10"; ${wait('go1')}; echo "${LIVE_LINE}"; echo "::ferry::progress 7/10"; ${wait('go2')}; echo finished`,
        ),
        timeout: '5m',
      },
    ]);
    await waitFor('one held, one running, one done', async () => {
      const states = await Promise.all([held, running, done].map(async (id) => (await ferry.api('GET', `/v1/migrations/${id}`)).body));
      return states[0].state === 'held' && states[1].state === 'running' && states[1].progress?.done === 3 && states[2].state === 'succeeded';
    });
    browser = await launchChromium();
    page = await newPage(browser, problems);
    await signIn(page, ferry.url, ferry.token);
  });

  after(async () => {
    await browser?.close();
    for (const t of ['blog']) for (const f of ['go1', 'go2']) go(t, f);
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('the list shows the held migration first and marked, and the running one with its progress', async () => {
    await page.goto(`${ferry.url}/#/`);
    const rows = page.locator('tbody tr');
    await waitFor('three rows', async () => (await rows.count()) === 3);
    assert.equal(await rows.first().getAttribute('data-id'), held, 'held first');
    assert.match((await rows.first().textContent()) ?? '', /held — needs a decision/);
    const runningRow = page.locator(`tr[data-id="${running}"]`);
    assert.match((await runningRow.textContent()) ?? '', /running.*blog.*github:acme\/platform#2.*1.*3\/10/s);
    assert.equal(await runningRow.getByRole('progressbar').getAttribute('value'), '3');
    await screenshot(page, 'migrations-list');
    await assertAccessible(page, 'the migrations list');
  });

  void test('the filters narrow the list by state, tenant and issue', async () => {
    await page.getByLabel('State').selectOption('held');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await waitFor(
      'only the held one',
      async () => (await page.locator('tbody tr').count()) === 1 && (await page.locator('tbody tr').first().getAttribute('data-id')) === held,
    );
    await page.getByLabel('State').selectOption('');
    await page.getByLabel('Tenant').fill('wiki');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await waitFor(
      'only the wiki one',
      async () => (await page.locator('tbody tr').count()) === 1 && (await page.locator('tbody tr').first().getAttribute('data-id')) === done,
    );
    await page.getByLabel('Tenant').fill('');
    await page.getByLabel('Issue').fill('github:acme/platform#2');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await waitFor(
      'only the issue #2 one',
      async () => (await page.locator('tbody tr').count()) === 1 && (await page.locator('tbody tr').first().getAttribute('data-id')) === running,
    );
  });

  void test('the detail page shows the verdict, attempts, progress and a log line printed after it opened', async () => {
    await page.goto(`${ferry.url}/#/m/${running}`);
    await page.getByRole('heading', { name: 'Admission verdict' }).waitFor();
    const verdict = page.getByRole('table', { name: 'Admission verdict per dimension' });
    assert.match((await verdict.textContent()) ?? '', /cpu\s*500m\s*1\s*2\s*2\s*ok/);
    assert.match((await verdict.textContent()) ?? '', /memory\s*256Mi\s*1Gi\s*2Gi/);
    const attempts = page.getByRole('table', { name: 'Attempts' });
    assert.match((await attempts.textContent()) ?? '', /1\s*1\s*2\s*—\s*—/);
    const current = page.locator('ol.steps li[aria-current="step"]');
    assert.match((await current.textContent()) ?? '', /rebuild-index — running now/);
    assert.equal(await current.getByRole('progressbar').getAttribute('value'), '3');
    await page.locator('#log').filter({ hasText: 'started' }).waitFor();
    assert.doesNotMatch((await page.locator('#log').textContent()) ?? '', new RegExp(LIVE_LINE));
    go('blog', 'go1');
    await page.locator('#log').filter({ hasText: LIVE_LINE }).waitFor({ timeout: 10_000 });
    // Progress arrives as an event (polled every 2 s) and moves the bar without a reload.
    await waitFor(
      'progress 7/10 on the page',
      async () => (await page.locator('ol.steps li[aria-current="step"] progress').getAttribute('value')) === '7',
      10_000,
    );
    await assertAccessible(page, 'the detail of a running migration');
  });

  void test('the list updates without a reload when the running migration finishes', async () => {
    await page.goto(`${ferry.url}/#/`);
    await page.locator(`tr[data-id="${running}"][data-state="running"]`).waitFor();
    await page.evaluate(() => ((globalThis as Record<string, unknown>).__notReloaded = true));
    const sent = Date.now();
    go('blog', 'go2');
    await page.locator(`tr[data-id="${running}"][data-state="succeeded"]`).waitFor({ timeout: 10_000 });
    const took = Date.now() - sent;
    assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>).__notReloaded), true, 'the page was not reloaded');
    assert.ok(took < 5_000, `shown within seconds of finishing (${took} ms, including the job's own exit)`);
  });

  void test('a held migration shows why, its checkpoint, the decisions with what each does, events and artifacts', async () => {
    await page.goto(`${ferry.url}/#/m/${held}`);
    await page.locator('#held').filter({ hasText: 'exit-code' }).waitFor();
    assert.match((await page.locator('#checkpoint').textContent()) ?? '', /batch-4/);
    for (const name of ['Resume', 'Wipe and retry', 'Accept partial', 'Abandon', 'Cancel']) await page.getByRole('button', { name, exact: true }).waitFor();
    assert.match((await page.getByRole('region', { name: 'Decisions' }).textContent()) ?? '', /reruns from step 1 \(copy-files\) with checkpoint "batch-4"/);
    assert.match((await page.getByRole('table', { name: 'Events' }).textContent()) ?? '', /admin.*approve/s);
    assert.match((await page.getByRole('table', { name: 'Artifacts' }).textContent()) ?? '', /log.*no/s);
    await page.locator('#log').filter({ hasText: 'disk quota exceeded' }).waitFor();
    await screenshot(page, 'held-migration');
    await assertAccessible(page, 'the detail of a held migration');
  });

  void test('the tenants page shows each holder and the capacity in use', async () => {
    await page.goto(`${ferry.url}/#/tenants`);
    const tenants = page.getByRole('table', { name: 'Tenants' });
    await tenants.waitFor();
    assert.match((await tenants.locator('tr', { hasText: 'shop' }).textContent()) ?? '', new RegExp(`${held}.*held`));
    await tenants.getByRole('link', { name: held }).waitFor();
    const capacity = page.getByRole('table', { name: 'Node capacity and use' });
    assert.match((await capacity.textContent()) ?? '', /cpu/);
    await assertAccessible(page, 'the tenants page');
  });

  void test('the issue page lists its migrations', async () => {
    await page.goto(`${ferry.url}/#/issue/${encodeURIComponent('github:acme/platform#1')}`);
    await page.getByRole('link', { name: held }).waitFor();
    await page.getByRole('button', { name: 'Close issue' }).waitFor();
    await assertAccessible(page, 'the issue page');
    assert.deepEqual(problems, [], 'no script error or CSP violation in the browser');
  });
});
