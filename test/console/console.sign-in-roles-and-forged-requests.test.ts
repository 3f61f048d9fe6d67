/**
 * Signing in to the console: a good token signs in, a wrong one is told so; a filer sees no
 * decision buttons, and a state-changing request made with its session cookie but without the
 * CSRF header, or from a foreign origin, is refused (and so is an operator's); signing out ends
 * the session on the server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry, writeTokensFile } from '../support/harness.ts';
import { assertAccessible, browserMissing, launchChromium, newPage, signIn } from './browser.ts';

const FILER = 'filer-token-0123456789abcdef';
const OPERATOR = 'operator-token-0123456789abcdef';
const missing = browserMissing();

void describe('console sign-in, roles and forged requests', { skip: missing }, () => {
  let ferry: Ferry;
  let browser: Browser;
  let tokensDir: string;
  let held: string;
  const problems: string[] = [];

  before(async () => {
    tokensDir = tempDir('ferry-tokens-');
    const tokensFile = writeTokensFile(tokensDir, [
      { name: 'fiona', role: 'filer', token: FILER },
      { name: 'otto', role: 'operator', token: OPERATOR },
    ]);
    ferry = await startFerry({ tokensFile });
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '1', memory: '1Gi' } })).status, 201);
    const filed = await ferry.api('POST', '/v1/migrations', request('shop', [{ name: 'fails', run: sh('echo failing; exit 3') }]));
    held = filed.body.id;
    assert.equal((await ferry.api('POST', `/v1/migrations/${held}/approve`, {})).status, 200);
    await waitFor('the migration to be held', async () => (await ferry.api('GET', `/v1/migrations/${held}`)).body.state === 'held');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(tokensDir);
  });

  void test('a wrong token is refused and the page says so; nothing is stored in the browser', async () => {
    const page = await newPage(browser, []);
    await page.goto(`${ferry.url}/`);
    await page.getByLabel('Token').fill('not-a-token-anyone-issued');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not known to this Ferry' }).waitFor();
    assert.equal((await page.context().cookies()).length, 0, 'no session cookie for a wrong token');
    await assertAccessible(page, 'the sign-in page');
    await page.context().close();
  });

  void test('a good token signs in with an HttpOnly SameSite=Strict cookie; the token is in no URL and no storage', async () => {
    const page = await newPage(browser, problems);
    await signIn(page, ferry.url, OPERATOR);
    await page.getByText('Signed in as otto (operator)').waitFor();
    const [cookie, ...others] = await page.context().cookies();
    assert.equal(others.length, 0);
    assert.equal(cookie?.name, 'ferry_session');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.notEqual(cookie?.value, OPERATOR);
    const stored = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, url: location.href }));
    assert.ok(!stored.includes(OPERATOR), `the token is kept nowhere in the page: ${stored}`);
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  void test('the keyboard alone signs in and opens a decision, and Escape closes it', async () => {
    const page = await newPage(browser, problems);
    await page.goto(`${ferry.url}/`);
    await page.getByLabel('Token').waitFor();
    // The token field has the focus on arrival; Enter submits.
    await page.keyboard.type(OPERATOR);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await page.goto(`${ferry.url}/#/m/${held}`);
    const resume = page.getByRole('button', { name: 'Resume', exact: true });
    await resume.focus();
    await page.keyboard.press('Enter');
    const reason = page.getByRole('dialog').getByLabel('Reason');
    await reason.waitFor();
    assert.equal(await reason.evaluate((el) => el === document.activeElement), true, 'the Reason field has the focus');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    assert.equal(await resume.evaluate((el) => el === document.activeElement), true, 'the focus is back on Resume');
    assert.equal((await ferry.api('GET', `/v1/migrations/${held}`)).body.state, 'held');
    await page.context().close();
  });

  void test('a filer sees the held migration but no decision buttons, and no Close issue', async () => {
    const page = await newPage(browser, problems);
    await signIn(page, ferry.url, FILER);
    await page.goto(`${ferry.url}/#/m/${held}`);
    await page.getByText('held — needs a decision').first().waitFor();
    await page.getByRole('heading', { name: 'Attempts' }).waitFor();
    for (const name of ['Resume', 'Wipe and retry', 'Accept partial', 'Abandon', 'Cancel', 'Approve']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `a filer sees no ${name} button`);
    }
    await page.goto(`${ferry.url}/#/issue/${encodeURIComponent('github:acme/platform#1')}`);
    await page.getByRole('link', { name: held }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Close issue' }).count(), 0);
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  void test("forged state changes with a session cookie are refused: no CSRF header, a foreign Origin, or a filer's role", async () => {
    const page = await newPage(browser, problems);
    await signIn(page, ferry.url, FILER);
    const path = `/v1/migrations/${held}/actions`;
    const body = { action: 'abandon', reason: 'forged' };
    // From the page itself (same origin, cookie sent by the browser) but without the CSRF header.
    const noCsrf = await page.evaluate(
      async ([p, b]) => {
        const r = await fetch(p as string, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
        return { status: r.status, body: await r.json() };
      },
      [path, body] as const,
    );
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.code, 'FERRY_CSRF');
    assert.match(noCsrf.body.detail, /CSRF/);
    // With the CSRF header, the filer's role still refuses it.
    const filerRole = await page.evaluate(
      async ([p, b]) => {
        const r = await fetch(p as string, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-ferry-csrf': sessionStorage.getItem('ferry.csrf') ?? '' },
          body: JSON.stringify(b),
        });
        return { status: r.status, body: await r.json() };
      },
      [path, body] as const,
    );
    assert.equal(filerRole.status, 403);
    assert.equal(filerRole.body.code, 'FERRY_FORBIDDEN');
    // A foreign page's request: the cookie and even the right CSRF token, but its Origin.
    const cookie = (await page.context().cookies())[0];
    const csrf = await page.evaluate(() => sessionStorage.getItem('ferry.csrf'));
    const foreign = await fetch(`${ferry.url}${path}`, {
      method: 'POST',
      headers: { cookie: `${cookie?.name}=${cookie?.value}`, origin: 'http://evil.example', 'x-ferry-csrf': csrf ?? '', 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(foreign.status, 403);
    assert.equal(((await foreign.json()) as { code: string }).code, 'FERRY_CSRF');
    await page.context().close();

    // An operator's session without the CSRF header is refused as well: the role is not what protects it.
    const op = await newPage(browser, problems);
    await signIn(op, ferry.url, OPERATOR);
    const opNoCsrf = await op.evaluate(
      async (p) =>
        (await fetch(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'abandon', reason: 'forged' }) }))
          .status,
      path,
    );
    assert.equal(opNoCsrf, 403);
    await op.context().close();
    assert.equal((await ferry.api('GET', `/v1/migrations/${held}`)).body.state, 'held', 'nothing changed');
  });

  void test('sign out ends the session on the server: the old cookie no longer reads anything', async () => {
    const page = await newPage(browser, problems);
    await signIn(page, ferry.url, OPERATOR);
    const cookie = (await page.context().cookies())[0];
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').waitFor();
    await page.getByText('You are signed out.').waitFor();
    const after = await fetch(`${ferry.url}/v1/migrations`, { headers: { cookie: `${cookie?.name}=${cookie?.value}` } });
    assert.equal(after.status, 401);
    assert.deepEqual(problems, []);
    await page.context().close();
  });
});
