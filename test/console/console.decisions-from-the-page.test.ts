/**
 * Deciding from the console, against real jobs: `Resume` with a reason makes a held migration run
 * again (checked through the API); each refusal of the server — no way to wipe, a migration no
 * longer held, the admission gate — is shown with the server's own sentence; `Close issue` removes
 * the issue's artifacts and says what it removed.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';
import { assertAccessible, browserMissing, launchChromium, newPage, signIn } from './browser.ts';

const missing = browserMissing();

void describe('console: decisions from the page', { skip: missing }, () => {
  let ferry: Ferry;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  const state = async (id: string) => (await ferry.api('GET', `/v1/migrations/${id}`)).body;
  async function fileAndHold(tenant: string, issue: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
    const filed = await ferry.api('POST', '/v1/migrations', request(tenant, [{ name: 'migrate', run: sh(script) }], { issue, ...extra }));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    assert.equal((await ferry.api('POST', `/v1/migrations/${filed.body.id}/approve`, {})).status, 200);
    await waitFor(`${filed.body.id} to be held`, async () => (await state(filed.body.id)).state === 'held');
    return filed.body.id;
  }
  /** Click `name`, give `reason` (when asked), confirm; the page's answer (result or refusal) is returned. */
  async function decide(name: string, reason: string | null): Promise<string> {
    await page.getByRole('button', { name, exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    if (reason !== null) await dialog.getByLabel('Reason').fill(reason);
    await dialog.getByRole('button', { name: `Confirm: ${name}` }).click();
    const answer = page.locator('#decision-result').locator('[role=alert], [role=status]');
    await answer.waitFor();
    return (await answer.textContent()) ?? '';
  }

  before(async () => {
    ferry = await startFerry();
    for (const t of ['shop', 'blog', 'wiki', 'docs'])
      assert.equal((await ferry.api('PUT', `/v1/tenants/${t}`, { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    browser = await launchChromium();
    page = await newPage(browser, problems);
    await signIn(page, ferry.url, ferry.token);
  });

  after(async () => {
    await browser?.close();
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('Resume with a reason runs the held migration again from the failed step', async () => {
    const id = await fileAndHold(
      'shop',
      'github:acme/platform#1',
      '[ -f "$FERRY_TENANT_DATA/fixed" ] || { echo "not fixed yet" >&2; exit 3; }; echo resumed-ok',
    );
    await page.goto(`${ferry.url}/#/m/${id}`);
    await page.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    writeFileSync(join(ferry.dataDir, 'tenants', 'shop', 'fixed'), '');
    // A reason is required: confirming without one is stopped by the page.
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm: Resume' }).click();
    await page.getByRole('dialog').getByRole('alert').filter({ hasText: 'Give a reason' }).waitFor();
    await assertAccessible(page, 'the decision dialog');
    await page.getByRole('dialog').getByLabel('Reason').fill('quota raised by the storage team');
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm: Resume' }).click();
    assert.match((await page.locator('#decision-result [role=status]').textContent()) ?? '', /Resume: done/);
    const after = await waitFor('attempt 2 to succeed', async () => {
      const m = await state(id);
      return m.state === 'succeeded' && m.attempts.length === 2 ? m : null;
    });
    assert.equal(after.attempts[1].fromStep, 0);
    assert.ok(
      after.events.some(
        (e: { kind: string; reason: string; actor: string }) => e.kind === 'resume' && e.reason === 'quota raised by the storage team' && e.actor === 'admin',
      ),
    );
    await page.locator('#state').filter({ hasText: 'succeeded' }).waitFor();
  });

  void test("Wipe and retry without a snapshot or wipe step shows the server's refusal, and the migration stays held", async () => {
    const id = await fileAndHold('blog', 'github:acme/platform#2', 'exit 4', { snapshot: 'never' });
    await page.goto(`${ferry.url}/#/m/${id}`);
    await page.getByText('not available: no snapshot and no wipe step').waitFor();
    const direct = await ferry.api('POST', `/v1/migrations/${id}/actions`, { action: 'wipe-and-retry', reason: 'probe' });
    assert.equal(direct.status, 409);
    const shown = await decide('Wipe and retry', 'start over');
    assert.ok(shown.includes(direct.body.detail), `the page shows the server's sentence: ${shown}`);
    assert.equal((await state(id)).state, 'held');
  });

  void test("a decision on a migration that is no longer held shows the server's wrong-state sentence", async () => {
    const id = await fileAndHold('wiki', 'github:acme/platform#3', 'exit 5');
    await page.goto(`${ferry.url}/#/m/${id}`);
    await page.getByRole('button', { name: 'Abandon', exact: true }).click();
    await page.getByRole('dialog').getByLabel('Reason').fill('not worth it');
    // Someone else decides first (through the API); the open dialog keeps the reason being typed.
    assert.equal((await ferry.api('POST', `/v1/migrations/${id}/actions`, { action: 'accept-partial', reason: 'good enough' })).status, 200);
    await page.waitForTimeout(500);
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm: Abandon' }).click();
    const alert = page.locator('#decision-result [role=alert]');
    await alert.waitFor();
    const again = await ferry.api('POST', `/v1/migrations/${id}/actions`, { action: 'abandon', reason: 'probe' });
    assert.equal(again.status, 409);
    assert.ok(((await alert.textContent()) ?? '').includes(again.body.detail), `shown: ${await alert.textContent()}`);
    assert.equal((await state(id)).state, 'accepted-partial');
    // After the dialog closed, the page caught up with the change it missed.
    await page.locator('#state').filter({ hasText: 'accepted-partial' }).waitFor();
  });

  void test("Approve refused by the admission gate shows the server's sentence", async () => {
    const filed = await ferry.api('POST', '/v1/migrations', request('docs', [{ name: 'noop', run: sh('true') }], { issue: 'github:acme/platform#4' }));
    assert.equal(filed.status, 201);
    // The tenant's steady-state shrinks after filing: 500m is now over twice 200m.
    assert.equal((await ferry.api('PUT', '/v1/tenants/docs', { steadyState: { cpu: '200m', memory: '1Gi' } })).status, 200);
    await page.goto(`${ferry.url}/#/m/${filed.body.id}`);
    const shown = await decide('Approve', null);
    const m = await state(filed.body.id);
    assert.equal(m.state, 'rejected');
    assert.match(shown, /Approve refused/);
    assert.match(shown, /exceeds 2 x steady-state/);
    assert.equal((await ferry.api('PUT', '/v1/tenants/docs', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 200);
  });

  void test('Close issue from the page cancels and removes every artifact of its migrations', async () => {
    const id = await fileAndHold('docs', 'github:acme/platform#9', 'echo will-fail; exit 6');
    const before = await state(id);
    assert.ok(before.artifacts.length >= 2);
    const files = before.artifacts.filter((a: { kind: string }) => a.kind === 'log' || a.kind === 'scratch').map((a: { ref: string }) => a.ref);
    assert.ok(files.every((f: string) => existsSync(f)));
    await page.goto(`${ferry.url}/#/issue/${encodeURIComponent('github:acme/platform#9')}`);
    await page.getByRole('button', { name: 'Close issue' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm: Close issue' }).click();
    const result = page.locator('#close-result [role=status]');
    await result.waitFor();
    const text = (await result.textContent()) ?? '';
    assert.match(text, new RegExp(`Cancelled: ${id}`));
    for (const f of files) assert.ok(text.includes(f), `the page lists removed ${f}: ${text}`);
    const after = await state(id);
    assert.equal(after.state, 'cancelled');
    assert.ok(
      after.artifacts.every((a: { removedAt: string | null }) => a.removedAt !== null),
      'every artifact removed',
    );
    assert.ok(
      files.every((f: string) => !existsSync(f)),
      'the files are gone',
    );
    await assertAccessible(page, 'the issue page after closing');
    assert.deepEqual(problems, []);
  });
});
