/**
 * Real Chromium for the console tests: Debian's `chromium` (scripts/setup-tests.sh installs it)
 * driven by playwright-core. Without it the tests skip with a loud reason, and fail under CI=true.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'console');

/** Why the browser tests cannot run here, or false. Throws under CI=true: CI must run them. */
export function browserMissing(): string | false {
  if (existsSync(CHROMIUM)) return false;
  const reason = `Chromium is not installed at ${CHROMIUM}: the console's browser tests are SKIPPED (run scripts/setup-tests.sh as root, or set FERRY_CHROMIUM)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; under CI=true this is a failure`);
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu'],
  });
}

/**
 * A new page that records what the browser complains about (a CSP violation, a script error, a
 * failed request other than a 4xx answer of the API) in `problems`, so that a test can assert
 * there were none.
 */
export async function newPage(browser: Browser, problems: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    // An answer of 4xx is the API saying no (not signed in yet, a refused decision): the pages show it.
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text()))
      problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return page;
}

/** Open the console and sign in with `token` through the form. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core finds no serious or critical violation on the page as it is. axe is evaluated through
 * the DevTools protocol rather than a <script> tag, because the console's CSP (rightly) refuses
 * inline scripts.
 */
export async function assertAccessible(page: Page, what: string): Promise<void> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await (
      globalThis as unknown as {
        axe: { run: () => Promise<{ violations: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: unknown }> }> }> };
      }
    ).axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => JSON.stringify(n.target)).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `axe-core found serious or critical violations on ${what}`);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** A job that prints `lines`, then waits (at most 2 minutes) for the file `go` in its tenant's data folder. */
export function waitingJob(before: string, after = 'echo done'): string[] {
  return ['sh', '-c', `${before}; i=0; while [ ! -f "$FERRY_TENANT_DATA/go" ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.1; done; ${after}`];
}
