/**
 * Bad input: 10,000 generated malformed or hostile requests (fast-check) against a real server
 * process: broken JSON and YAML, unknown fields, negative and absurd quantities, peaks over 2x,
 * unicode and path-like ids, oversized bodies, wrong content types, forged tokens, bad query
 * strings, unsigned webhooks. Every one is invalid by construction, so each must be answered with
 * a 4xx problem carrying a `code`, the server must stay up, and the store's rows must be exactly
 * as before. Requests go through node:http so that paths are sent as generated (fetch would
 * resolve `..` segments).
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { normaliseIssueRef } from '../src/core/issue-ref.ts';
import { TENANT_ID } from '../src/core/request-schema.ts';
import { removeDir, tempDir } from '../test/support/harness.ts';
import { spawnServer } from '../test/support/server-process.ts';
import { storeRows } from './support.ts';

const RUNS = Number(process.env.FERRY_RELIABILITY_BAD_INPUT_RUNS ?? 10_000);

interface Hostile {
  readonly label: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer;
  /** Use the real admin token (otherwise the request carries its own, forged or none). */
  readonly auth: boolean;
}

/** Tenant `shop` is steady 500m / 1Gi, so this document is valid: every generator breaks it. */
const GOOD = { issue: 'github:acme/platform#9', tenant: 'shop', peak: { cpu: '1', memory: '2Gi' }, steps: [{ name: 'copy', run: ['sh', '-c', 'true'] }] };
const JSON_TYPE = { 'content-type': 'application/json' };
const YAML_TYPE = { 'content-type': 'application/yaml' };

const enc = (s: string) => encodeURIComponent(s).replaceAll('.', '%2E');
const notTenantId = fc
  .oneof(fc.string({ maxLength: 80 }), fc.constantFrom('..', '../etc', 'shop/../x', 'ШОП', 'shop\u0000', 'SHOP', '-shop', 'a'.repeat(64), '%2e%2e', '😀'))
  .filter((s) => !TENANT_ID.test(s));
const notIssueRef = fc
  .oneof(fc.string({ maxLength: 60 }), fc.constantFrom('github:../x#1', 'github:acme/platform#-1', '#1', 'jira:a/b#1', 'github:acme/platform', ''))
  .filter((s) => {
    try {
      normaliseIssueRef(s);
      return false;
    } catch {
      return true;
    }
  });
const badQuantity = fc.oneof(
  fc.constantFrom('-1', '-500m', '1e99', '99999999999999999999Ti', 'NaN', 'Infinity', '', '1.5.5', '0x10', '1 Gi', '∞', '1Gi; drop table', '-0.000001'),
  fc.string({ maxLength: 20 }).filter((s) => !/\d/.test(s)),
  fc.integer({ max: -1 }),
  fc.double().filter((d) => Number.isNaN(d) || d < 0 || d > 1e13),
);
const KNOWN = new Set(['issue', 'tenant', 'peak', 'steps', 'wipe', 'snapshot', 'image', 'env']);

/** One way to break the valid document; each yields a document the API must refuse. */
const brokenDocument: fc.Arbitrary<unknown> = fc.oneof(
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !KNOWN.has(k) && k !== '__proto__'),
      fc.jsonValue(),
    )
    .map(([k, v]) => ({ ...GOOD, [k]: v })),
  fc.tuple(fc.constantFrom('cpu', 'memory'), badQuantity).map(([d, q]) => ({ ...GOOD, peak: { ...GOOD.peak, [d]: q } })),
  fc
    .constantFrom({ cpu: '1001m', memory: '2Gi' }, { cpu: '1', memory: '2049Mi' }, { cpu: '1' }, { memory: '1Gi' }, { cpu: '1', memory: '1Gi', gpu: '1' }, {})
    .map((peak) => ({ ...GOOD, peak })),
  notTenantId.map((tenant) => ({ ...GOOD, tenant })),
  fc
    .stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/)
    .filter((t) => t !== 'shop')
    .map((tenant) => ({ ...GOOD, tenant })),
  notIssueRef.map((issue) => ({ ...GOOD, issue })),
  fc
    .constantFrom<unknown>(
      [],
      [{ name: 'x', run: [] }],
      [{ name: 'x', run: 'true' }],
      [{ run: ['true'] }],
      [{ name: 'x', run: ['true'], timeout: '-1s' }],
      [{ name: 'x', run: ['true'], timeout: 'forever' }],
      [{ name: 'x', run: ['true'], extra: 1 }],
      'steps',
      null,
    )
    .map((steps) => ({ ...GOOD, steps })),
  fc.constantFrom({ snapshot: 'sometimes' }, { env: { A: 1 } }, { env: 'A=1' }, { image: 123 }, { wipe: 'rm -rf /' }).map((extra) => ({ ...GOOD, ...extra })),
  fc.constantFrom<unknown>([], 42, 'migration', null, true, [GOOD]),
  fc.constantFrom('issue', 'tenant', 'peak', 'steps').map((k) => Object.fromEntries(Object.entries(GOOD).filter(([key]) => key !== k))),
);

const json = JSON.stringify(GOOD);
const yaml = toYaml({ steps: GOOD.steps, peak: GOOD.peak, issue: GOOD.issue, tenant: GOOD.tenant });

const hostile: fc.Arbitrary<Hostile> = fc.oneof(
  {
    weight: 6,
    arbitrary: brokenDocument.map((d) => ({
      label: 'invalid document (JSON)',
      method: 'POST',
      path: '/v1/migrations',
      headers: JSON_TYPE,
      body: JSON.stringify(d),
      auth: true,
    })),
  },
  {
    weight: 2,
    arbitrary: brokenDocument.map((d) => ({
      label: 'invalid document (check)',
      method: 'POST',
      path: '/v1/migrations/check',
      headers: JSON_TYPE,
      body: JSON.stringify(d),
      auth: true,
    })),
  },
  {
    weight: 2,
    arbitrary: brokenDocument.map((d) => ({
      label: 'invalid document (YAML)',
      method: 'POST',
      path: '/v1/migrations',
      headers: YAML_TYPE,
      body: toYaml(d),
      auth: true,
    })),
  },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: 0, max: json.length - 1 })
      .map((n) => ({ label: 'truncated JSON', method: 'POST', path: '/v1/migrations', headers: JSON_TYPE, body: json.slice(0, n), auth: true })),
  },
  // The YAML puts `tenant: shop` last, so every proper prefix lacks it or names another tenant.
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: 0, max: yaml.trimEnd().length - 1 })
      .map((n) => ({ label: 'truncated YAML', method: 'POST', path: '/v1/migrations', headers: YAML_TYPE, body: yaml.slice(0, n), auth: true })),
  },
  {
    weight: 2,
    arbitrary: fc
      .string({ maxLength: 300 })
      .map((s) => ({ label: 'garbage YAML', method: 'POST', path: '/v1/migrations', headers: YAML_TYPE, body: s, auth: true })),
  },
  {
    weight: 2,
    arbitrary: fc
      .string({ maxLength: 300 })
      .map((s) => ({ label: 'garbage JSON', method: 'POST', path: '/v1/migrations', headers: JSON_TYPE, body: `{${s}`, auth: true })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        'text/plain',
        'application/xml',
        'multipart/form-data; boundary=x',
        'application/x-www-form-urlencoded',
        'image/png',
        'application/json-patch+json',
        'yaml',
      )
      .map((type) => ({ label: `content type ${type}`, method: 'POST', path: '/v1/migrations', headers: { 'content-type': type }, body: json, auth: true })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(JSON_TYPE, YAML_TYPE)
      .map((h) => ({ label: 'oversized body', method: 'POST', path: '/v1/migrations', headers: h, body: Buffer.alloc(1024 * 1024 + 10, 0x61), auth: true })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.oneof(
          fc.constant(undefined),
          fc.string({ maxLength: 60 }).map((t) => `Bearer ${t.replace(/[^\x21-\x7e]/g, 'x')}`),
          fc.constantFrom('Basic YWRtaW46YWRtaW4=', 'Bearer', 'bearer  ', 'Token abc'),
        ),
        fc.constantFrom(
          ['POST', '/v1/migrations', json],
          ['PUT', '/v1/tenants/shop', JSON.stringify({ steadyState: { cpu: '64', memory: '1Ti' } })],
          ['PUT', '/v1/tenants/newcomer', JSON.stringify({ steadyState: { cpu: '1', memory: '1Gi' } })],
          ['GET', '/v1/migrations', undefined],
          ['POST', '/v1/issues/github%3Aacme%2Fplatform%239/close', '{}'],
        ),
      )
      .map(([authorization, [method, path, body]]) => ({
        label: 'forged token',
        method,
        path,
        headers: { ...(body ? JSON_TYPE : {}), ...(authorization ? { authorization } : {}) },
        body,
        auth: false,
      })),
  },
  {
    weight: 2,
    arbitrary: fc
      .string({ minLength: 1, maxLength: 80 })
      .map((id) => ({ label: 'unknown migration id', method: 'GET', path: `/v1/migrations/${enc(id)}`, headers: {}, auth: true })),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 80 }), fc.constantFrom('approve', 'cancel', 'actions', 'logs')).map(([id, verb]) => ({
      label: `${verb} of an unknown id`,
      method: verb === 'logs' ? 'GET' : 'POST',
      path: `/v1/migrations/${enc(id)}/${verb}`,
      headers: verb === 'logs' ? {} : JSON_TYPE,
      body: verb === 'logs' ? undefined : '{}',
      auth: true,
    })),
  },
  {
    weight: 2,
    arbitrary: notTenantId
      .filter((s) => s.length > 0)
      .map((id) => ({
        label: 'bad tenant id',
        method: 'PUT',
        path: `/v1/tenants/${enc(id)}`,
        headers: JSON_TYPE,
        body: JSON.stringify({ steadyState: { cpu: '1', memory: '1Gi' } }),
        auth: true,
      })),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.constant({}),
        fc.constant({ steadyState: 'small' }),
        badQuantity.map((q) => ({ steadyState: { cpu: q, memory: '1Gi' } })),
        fc.jsonValue().map((v) => ({ steadyState: { cpu: '1', memory: '1Gi' }, extra: v })),
      )
      .map((body) => ({ label: 'bad tenant body', method: 'PUT', path: '/v1/tenants/shop', headers: JSON_TYPE, body: JSON.stringify(body), auth: true })),
  },
  {
    weight: 1,
    arbitrary: notIssueRef
      .filter((s) => s.length > 0)
      .map((ref) => ({ label: 'bad issue ref', method: 'POST', path: `/v1/issues/${enc(ref)}/close`, headers: JSON_TYPE, body: '{}', auth: true })),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc
          .string({ maxLength: 30 })
          .filter(
            (s) =>
              !/^(filed|approved|queued|running|held|succeeded|rejected|accepted-partial|abandoned|cancelled)(,(filed|approved|queued|running|held|succeeded|rejected|accepted-partial|abandoned|cancelled))*$/.test(
                s,
              ),
          )
          .map((s) => `state=${enc(s)}`),
        notTenantId.map((s) => `tenant=${enc(s)}`),
        notIssueRef.filter((s) => s.length > 0).map((s) => `issue=${enc(s)}`),
        fc.constantFrom('bogus=1', 'state=running&extra=2', 'limit=-1'),
      )
      .map((q) => ({ label: 'bad query', method: 'GET', path: `/v1/migrations?${q}`, headers: {}, auth: true })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('github', 'gitea', 'gitlab'),
        fc.string({ maxLength: 200 }),
        fc.constantFrom<Record<string, string>>({}, { 'x-hub-signature-256': 'sha256=00' }, { 'x-gitlab-token': 'guess' }, { 'x-gitea-signature': 'abc' }),
      )
      .map(([tracker, body, h]) => ({
        label: 'unsigned webhook',
        method: 'POST',
        path: `/v1/hooks/${tracker}`,
        headers: { ...JSON_TYPE, 'x-github-event': 'issues', ...h },
        body,
        auth: false,
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('DELETE', 'PATCH', 'PUT')
      .map((method) => ({ label: `${method} on a collection`, method, path: '/v1/migrations', headers: JSON_TYPE, body: '{}', auth: true })),
  },
  // Deep documents (issue 8): the YAML parser's stack overflowed near 800 levels, and a second
  // overflow aborted Node. Refused before parsing, whatever the spelling of the nesting.
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 65, max: 100_000 }),
        fc.constantFrom(
          (d: number) => ({ type: YAML_TYPE, body: `a: ${'['.repeat(d)}${']'.repeat(d)}` }),
          (d: number) => ({ type: YAML_TYPE, body: `tenant: shop\nsteps:\n${'- '.repeat(d)}x` }),
          (d: number) => ({ type: YAML_TYPE, body: `env: ${'{a: '.repeat(Math.min(d, 30_000))}` }),
          (d: number) => ({ type: JSON_TYPE, body: `{"tenant":"shop","peak":${'['.repeat(d)}${']'.repeat(d)}}` }),
        ),
        fc.constantFrom(['POST', '/v1/migrations'], ['POST', '/v1/migrations/check'], ['PUT', '/v1/tenants/shop']),
      )
      .map(([d, form, [method, path]]) => {
        const { type, body } = form(d);
        return { label: 'deep document', method, path, headers: type, body, auth: true };
      }),
  },
);

void test(`${RUNS} hostile requests: each a 4xx with a code, the server stays up, the store is unchanged`, { timeout: 600_000 }, async () => {
  const dataDir = tempDir('ferry-rel-bad-');
  const server = await spawnServer(dataDir);
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  try {
    assert.equal((await server.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '500m', memory: '1Gi' } })).status, 201);
    const existing = await server.api('POST', '/v1/migrations', { ...GOOD, issue: 'github:acme/platform#1' });
    assert.equal(existing.status, 201, JSON.stringify(existing.body));
    const before = storeRows(dataDir);
    const url = new URL(server.url);
    const send = (h: Hostile) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const headers: Record<string, string> = { ...h.headers };
        if (h.auth) headers.authorization = `Bearer ${server.token}`;
        // With a length, as clients send bodies. (A chunked DELETE body is refused by Node's HTTP
        // parser before Fastify sees it: a bare 400 without a code; see BENCHMARKS.md.)
        if (h.body !== undefined) headers['content-length'] = String(Buffer.byteLength(h.body));
        let answered = false;
        const req = httpRequest({ agent, host: url.hostname, port: url.port, method: h.method, path: h.path, headers }, (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
            if (!req.writableFinished) req.destroy(); // the rest of a refused body is not sent
          });
          res.on('error', reject);
        });
        req.on('error', (err) => (answered ? undefined : reject(err)));
        const body = h.body === undefined ? undefined : Buffer.from(h.body);
        if (body === undefined || body.length <= 256 * 1024) return void req.end(body);
        // A large body goes in two parts, the second only if no answer came after the first: a server
        // that refuses it by its declared length answers before reading it, and closes the connection;
        // sent whole, the client's write would fail (EPIPE) before it could read that answer.
        req.write(body.subarray(0, 64 * 1024));
        setTimeout(() => (answered ? undefined : req.end(body.subarray(64 * 1024))), 5000);
      });
    const counts = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(hostile, async (h) => {
        counts.set(h.label, (counts.get(h.label) ?? 0) + 1);
        const res = await send(h);
        assert.ok(res.status >= 400 && res.status < 500, `${h.label}: ${h.method} ${h.path} → ${res.status} ${res.body.slice(0, 300)}`);
        let code: unknown;
        try {
          code = (JSON.parse(res.body) as { code?: unknown }).code;
        } catch {
          code = undefined;
        }
        assert.equal(typeof code, 'string', `${h.label}: ${res.status} without a problem code: ${res.body.slice(0, 200)}`);
      }),
      { numRuns: RUNS, seed: Number(process.env.FERRY_RELIABILITY_SEED ?? Date.now() % 2 ** 31), verbose: 1, includeErrorInReport: true },
    );
    console.log(
      [...counts]
        .sort()
        .map(([l, n]) => `${l}: ${n}`)
        .join('\n'),
    );
    assert.equal(server.child.exitCode, null, 'the server did not crash');
    assert.equal((await server.api('GET', '/healthz')).status, 200);
    assert.deepEqual(storeRows(dataDir), before, 'a refused request changed a row of the store');
  } finally {
    agent.destroy();
    await server.kill('SIGTERM');
    removeDir(dataDir);
  }
});
