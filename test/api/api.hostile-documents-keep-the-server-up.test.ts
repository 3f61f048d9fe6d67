/**
 * Hostile documents cannot end the server: deep and wide YAML (flow brackets, compact sequences,
 * indentation, aliases) and JSON, on POST /v1/migrations, POST /v1/migrations/check,
 * PUT /v1/tenants/:id and a signed webhook whose issue carries a ```ferry block. Each is refused
 * with a problem (or, for a webhook, answered and commented on), the server answers /healthz
 * afterwards, and nothing is stored. The 200 KB bracket body of the issue is sent twice: the
 * second one used to abort Node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { body as rawBody } from '../tracker/helpers.ts';
import { deliver, issueDelivery, registerTenant, startFakeTracker, startThreadFerry, type FakeTracker } from '../tracker/integration/thread-kit.ts';
import { call, removeDir, waitFor, type Ferry } from '../support/harness.ts';
import { assertProblem } from './problem-assertions.ts';

const BOMB = `a: ${'['.repeat(100_000)}${']'.repeat(100_000)}`;
const YAML = { 'content-type': 'application/yaml' };
const JSON_TYPE = { 'content-type': 'application/json' };

interface Hostile {
  readonly text: string;
  /** The codes it may be refused with; null: any 4xx problem (a wide document is merely invalid). */
  readonly codes: readonly string[] | null;
}
/** Nests deeper than 64 in its text: refused before parsing. */
const deep = (text: string): Hostile => ({ text, codes: ['FERRY_DOCUMENT_TOO_DEEP'] });
/** Nests deeper than 64 once its aliases are expanded: refused by the alias bound or the value check. */
const aliased = (text: string): Hostile => ({ text, codes: ['FERRY_DOCUMENT_TOO_DEEP', 'FERRY_BAD_REQUEST'] });
const wide = (text: string): Hostile => ({ text, codes: null });

/** Hostile YAML texts, each under the default 1 MiB body limit. */
const hostileYaml = fc.oneof(
  fc.integer({ min: 65, max: 100_000 }).map((d) => deep(`tenant: shop\npeak: ${'['.repeat(d)}${']'.repeat(d)}`)),
  fc.integer({ min: 65, max: 100_000 }).map((d) => deep(`tenant: shop\nsteps: ${'['.repeat(d)}`)),
  fc.integer({ min: 65, max: 30_000 }).map((d) => deep(`tenant: shop\nenv: ${'{a: '.repeat(d)}1${'}'.repeat(d)}`)),
  fc.integer({ min: 65, max: 100_000 }).map((d) => deep(`tenant: shop\nsteps:\n${'- '.repeat(d)}x`)),
  fc.integer({ min: 65, max: 700 }).map((d) => deep(`${Array.from({ length: d }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')} 1`)),
  fc.integer({ min: 65, max: 500 }).map((d) => deep(`${Array.from({ length: d }, (_, i) => `${' '.repeat(i * 2)}${i % 2 ? '- ' : 'k:'}`).join('\n')} 1`)),
  fc.integer({ min: 65, max: 50_000 }).map((d) => deep(`a: ${'[{x: '.repeat(d)}`)),
  // Anchors that repeat a deep node inside another: 40 levels of text, 120 and more once expanded.
  fc.integer({ min: 3, max: 8 }).map((n) => {
    const lines = [`l0: &l0 ${'['.repeat(40)}1${']'.repeat(40)}`];
    for (let i = 1; i < n; i++) lines.push(`l${i}: &l${i} ${'['.repeat(40)}*l${i - 1}${']'.repeat(40)}`);
    return aliased(lines.join('\n'));
  }),
  // A billion laughs: shallow, refused by the alias bound.
  fc.integer({ min: 5, max: 12 }).map((n) => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < n; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    return wide(`tenant: shop\n${lines.join('\n')}`);
  }),
  // Wide: many entries, shallow.
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => wide(`tenant: shop\nsteps: [${'1, '.repeat(n)}1]`)),
  // A mapping of many keys: the parser's duplicate check is quadratic (40,000 keys: 11 s), so refused as too large.
  fc
    .integer({ min: 1_001, max: 60_000 })
    .map((n) => ({ text: Array.from({ length: n }, (_, i) => `k${i}: ${i}`).join('\n'), codes: ['FERRY_PAYLOAD_TOO_LARGE'] })),
  fc
    .integer({ min: 1_001, max: 30_000 })
    .map((n) => ({ text: `tenant: shop\nenv: {${Array.from({ length: n }, (_, i) => `K${i}: v`).join(', ')}}`, codes: ['FERRY_PAYLOAD_TOO_LARGE'] })),
);

const hostileJson = fc.oneof(
  fc.integer({ min: 64, max: 300_000 }).map((d) => deep(`{"tenant":"shop","peak":${'['.repeat(d)}${']'.repeat(d)}}`)),
  fc.integer({ min: 65, max: 100_000 }).map((d) => deep(`${'{"a":'.repeat(d)}1${'}'.repeat(d)}`)),
  fc.integer({ min: 65, max: 500_000 }).map((d) => deep('['.repeat(d))),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => wide(`{"tenant":"shop","steps":[${'{},'.repeat(n)}{}]}`)),
);

void describe('hostile documents keep the server up', () => {
  let ferry: Ferry;
  let tracker: FakeTracker;
  let issue = 100;

  const stored = async () => ({
    migrations: (await ferry.api('GET', '/v1/migrations')).body,
    tenants: (await ferry.api('GET', '/v1/tenants')).body,
  });
  const healthy = async () => assert.equal((await call(ferry.url, null, 'GET', '/healthz')).status, 200, 'the server still answers');

  before(async () => {
    tracker = await startFakeTracker('github');
    ferry = await startThreadFerry(tracker, { extra: { filers: ['*'] } });
    await registerTenant(ferry);
  });
  after(async () => {
    await ferry.stop();
    await tracker.close();
    removeDir(ferry.dataDir);
  });

  void test('the 200 KB bracket body of the issue, twice, on every document endpoint', async () => {
    const before = await stored();
    for (let i = 0; i < 2; i++) {
      for (const [method, path] of [
        ['POST', '/v1/migrations'],
        ['POST', '/v1/migrations/check'],
        ['PUT', '/v1/tenants/shop'],
      ] as const) {
        const problem = assertProblem(await ferry.api(method, path, BOMB, YAML), 400, 'FERRY_DOCUMENT_TOO_DEEP');
        assert.equal(problem.detail, 'the document nests deeper than 64 levels; flatten it');
      }
      await healthy();
    }
    assert.deepEqual(await stored(), before);
  });

  void test('a bracket bomb in the ferry block of a signed webhook, twice: answered, commented on, nothing filed', async () => {
    const before = await stored();
    // A ferry block is at most 64 KiB: 30,000 brackets fit (the 200 KB body is refused for its size).
    const block = `tenant: shop\npeak: ${'['.repeat(30_000)}${']'.repeat(30_000)}`;
    for (const text of [block, block, BOMB]) {
      const thread = { kind: 'github' as const, repo: 'acme/platform', number: issue++ };
      const comments = tracker.comments.length;
      const sent = await deliver(ferry, 'github', issueDelivery(thread, 'opened', `Move it.\n\n\`\`\`ferry\n${text}\n\`\`\`\n`, 'mallory'));
      assert.equal(sent.status, 200, `answered: ${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`);
      await healthy();
      await waitFor('the thread to be told', () => tracker.comments.length > comments);
      const said = tracker.comments.at(-1)?.bodies.at(-1) ?? '';
      assert.match(said, text === BOMB ? /longer than 65536 characters/ : /nests deeper than 64 levels; flatten it/);
    }
    assert.deepEqual(await stored(), before);
  });

  void test('a deep JSON webhook body is refused as too deep', async () => {
    const thread = { kind: 'github' as const, repo: 'acme/platform', number: issue++ };
    const delivery = issueDelivery(thread, 'opened', 'no block', 'mallory');
    const raw = Buffer.from(`{"deep":${'['.repeat(200_000)}${']'.repeat(200_000)},${rawBody(delivery.payload).toString('utf8').slice(1)}`);
    const sent = await deliver(ferry, 'github', delivery, { raw });
    assertProblem(
      { status: sent.status, body: sent.body, headers: new Headers({ 'content-type': 'application/problem+json' }) },
      400,
      'FERRY_DOCUMENT_TOO_DEEP',
    );
    await healthy();
  });

  void test('fuzz: deep and wide YAML on the API and in webhook blocks', async () => {
    const before = await stored();
    await fc.assert(
      fc.asyncProperty(hostileYaml, fc.constantFrom('file', 'check', 'tenant', 'webhook'), async ({ text, codes }, where) => {
        if (where === 'webhook') {
          const thread = { kind: 'github' as const, repo: 'acme/platform', number: issue++ };
          const sent = await deliver(ferry, 'github', issueDelivery(thread, 'opened', `\`\`\`ferry\n${text.slice(0, 60_000)}\n\`\`\`\n`, 'mallory'));
          assert.equal(sent.status, 200, `${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`);
        } else {
          const [method, path] =
            where === 'file' ? ['POST', '/v1/migrations'] : where === 'check' ? ['POST', '/v1/migrations/check'] : ['PUT', '/v1/tenants/shop'];
          const res = await ferry.api(method, path, text, YAML);
          assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
          const problem = assertProblem(res, res.status);
          if (codes) assert.ok(codes.includes(problem.code as string), `${problem.code} is one of ${codes.join(', ')}`);
        }
        await healthy();
      }),
      { numRuns: 60 },
    );
    assert.deepEqual(await stored(), before);
  });

  void test('fuzz: deep and wide JSON on the API and as webhook bodies', async () => {
    const before = await stored();
    await fc.assert(
      fc.asyncProperty(hostileJson, fc.constantFrom('file', 'check', 'tenant', 'webhook'), async ({ text, codes }, where) => {
        if (where === 'webhook') {
          const thread = { kind: 'github' as const, repo: 'acme/platform', number: issue++ };
          const sent = await deliver(ferry, 'github', issueDelivery(thread, 'opened', 'x', 'mallory'), { raw: Buffer.from(text) });
          assert.ok(sent.status >= 400 && sent.status < 500, `${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`);
          if (codes) assert.ok(codes.includes(sent.body.code), `${sent.body.code} is one of ${codes.join(', ')}`);
        } else {
          const [method, path] =
            where === 'file' ? ['POST', '/v1/migrations'] : where === 'check' ? ['POST', '/v1/migrations/check'] : ['PUT', '/v1/tenants/shop'];
          const res = await ferry.api(method, path, text, JSON_TYPE);
          const problem = assertProblem(res, res.status);
          if (codes) assert.ok(codes.includes(problem.code as string), `${problem.code} is one of ${codes.join(', ')}`);
          assert.ok(res.status >= 400 && res.status < 500);
        }
        await healthy();
      }),
      { numRuns: 60 },
    );
    assert.deepEqual(await stored(), before);
  });

  void test('JSON: 64 levels reach validation, 65 are refused before parsing; prototype poisoning is still refused', async () => {
    const at = (d: number) => `{"tenant":"shop","env":${'{"a":'.repeat(d - 1)}1${'}'.repeat(d - 1)}}`;
    assertProblem(await ferry.api('POST', '/v1/migrations/check', at(64), JSON_TYPE), 422, 'FERRY_INVALID_REQUEST');
    assertProblem(await ferry.api('POST', '/v1/migrations/check', at(65), JSON_TYPE), 400, 'FERRY_DOCUMENT_TOO_DEEP');
    const res = await ferry.api('PUT', '/v1/tenants/shop', '{"steadyState":{"cpu":"1","memory":"1Gi"},"__proto__":{"admin":true}}', JSON_TYPE);
    assertProblem(res, 400, 'FERRY_BAD_REQUEST');
  });
});
