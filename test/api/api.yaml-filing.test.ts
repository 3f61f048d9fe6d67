/** Filing the request document of README.md as YAML, and normalising its issue ref. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeDir, startFerry, type Ferry } from '../support/harness.ts';

// The design's example, verbatim (comments included).
const DESIGN_EXAMPLE = `issue: github:acme/platform#742
tenant: shop
peak: { cpu: 1500m, memory: 2Gi }
steps:
  - name: copy-files
    run: ["sh", "-c", "cp -a /srv/old-shop/. \\"$FERRY_TENANT_DATA\\"/"]
  - name: rebuild-index
    run: ["sh", "-c", "shop-reindex --from \\"\${FERRY_CHECKPOINT:-0}\\""]
    timeout: 30m
wipe: ["sh", "-c", "find \\"$FERRY_TENANT_DATA\\" -mindepth 1 -delete"]   # optional
snapshot: auto        # auto | always | never
image: registry.local/shop-migrate:1   # container and kubernetes substrates
env: { SOURCE: old-shop }
`;

void describe('YAML filing', () => {
  let ferry: Ferry;

  before(async () => {
    ferry = await startFerry({ defaultIssueRepo: 'github:acme/platform' });
    // Steady-state at exactly half the example's peak: the example is admitted at the 2x boundary.
    assert.equal((await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '750m', memory: '1Gi' } })).status, 201);
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test("the design's example, sent as application/yaml, is filed (201) and normalised", async () => {
    const res = await ferry.api('POST', '/v1/migrations', DESIGN_EXAMPLE, { 'content-type': 'application/yaml' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const m = res.body;
    assert.equal(m.state, 'filed');
    assert.equal(m.issue, 'github:acme/platform#742');
    assert.equal(m.tenant, 'shop');
    assert.deepEqual(m.peak, { cpu: 1500, memory: 2 * 1024 ** 3 });
    assert.deepEqual(
      m.request.steps.map((s: { name: string; timeoutMs?: number }) => [s.name, s.timeoutMs ?? null]),
      [
        ['copy-files', null],
        ['rebuild-index', 30 * 60 * 1000],
      ],
    );
    assert.deepEqual(m.request.steps[0].run, ['sh', '-c', 'cp -a /srv/old-shop/. "$FERRY_TENANT_DATA"/']);
    assert.deepEqual(m.request.wipe, ['sh', '-c', 'find "$FERRY_TENANT_DATA" -mindepth 1 -delete']);
    assert.equal(m.request.snapshot, 'auto');
    assert.equal(m.request.image, 'registry.local/shop-migrate:1');
    assert.deepEqual(m.request.env, { SOURCE: 'old-shop' });
    assert.equal(m.verdict.ok, true);

    const got = await ferry.api('GET', `/v1/migrations/${m.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.issue, 'github:acme/platform#742');
    const byIssue = await ferry.api('GET', `/v1/migrations?issue=${encodeURIComponent('github:acme/platform#742')}`);
    assert.deepEqual(
      byIssue.body.map((x: { id: string }) => x.id),
      [m.id],
    );
  });

  void test('a bare #N issue takes the configured default tracker and repo; other YAML types work too', async () => {
    for (const [type, issue, expected] of [
      ['application/x-yaml', '"#743"', 'github:acme/platform#743'],
      ['text/yaml; charset=utf-8', '"  gitlab:group/sub/repo#9  "', 'gitlab:group/sub/repo#9'],
    ] as const) {
      const doc = DESIGN_EXAMPLE.replace('issue: github:acme/platform#742', `issue: ${issue}`);
      const res = await ferry.api('POST', '/v1/migrations', doc, { 'content-type': type });
      assert.equal(res.status, 201, `${type}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.issue, expected);
    }
  });
});
