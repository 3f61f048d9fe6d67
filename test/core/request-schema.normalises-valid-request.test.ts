import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMigrationRequest, parseTenantInput } from '../../src/core/request-schema.ts';

/** The request document of README.md, as the YAML parser hands it over. */
const designExample = {
  issue: ' github:acme/platform#742 ',
  tenant: 'shop',
  peak: { cpu: '1500m', memory: '2Gi' },
  steps: [
    { name: 'copy-files', run: ['sh', '-c', 'cp -a /srv/old-shop/. "$FERRY_TENANT_DATA"/'] },
    { name: 'rebuild-index', run: ['sh', '-c', 'shop-reindex --from "${FERRY_CHECKPOINT:-0}"'], timeout: '30m' },
  ],
  wipe: ['sh', '-c', 'find "$FERRY_TENANT_DATA" -mindepth 1 -delete'],
  snapshot: 'auto',
  image: 'registry.local/shop-migrate:1',
  env: { SOURCE: 'old-shop' },
};

void test('the design example normalises to integers, milliseconds and a normalised issue ref', () => {
  assert.deepEqual(parseMigrationRequest(designExample), {
    issue: 'github:acme/platform#742',
    tenant: 'shop',
    peak: { cpu: 1500, memory: 2 * 1024 ** 3 },
    steps: [
      { name: 'copy-files', run: designExample.steps[0]?.run, timeoutMs: undefined },
      { name: 'rebuild-index', run: designExample.steps[1]?.run, timeoutMs: 30 * 60_000 },
    ],
    wipe: designExample.wipe,
    snapshot: 'auto',
    image: 'registry.local/shop-migrate:1',
    env: { SOURCE: 'old-shop' },
  });
});

void test('a minimal request gets snapshot auto, empty env and no wipe or image', () => {
  const request = parseMigrationRequest(
    {
      issue: '#9',
      tenant: 'a',
      peak: { cpu: 2, memory: 1024 },
      steps: [{ name: 'only', run: ['true'], timeout: 90 }],
    },
    { tracker: 'gitea', repo: 'ops/platform' },
  );
  assert.equal(request.issue, 'gitea:ops/platform#9');
  assert.equal(request.snapshot, 'auto');
  assert.deepEqual(request.env, {});
  assert.equal(request.wipe, undefined);
  assert.equal(request.image, undefined);
  assert.deepEqual(request.peak, { cpu: 2000, memory: 1024 });
  assert.equal(request.steps[0]?.timeoutMs, 90_000);
});

void test('snapshot policies always and never are kept', () => {
  for (const snapshot of ['always', 'never'] as const) {
    const request = parseMigrationRequest({ ...designExample, snapshot });
    assert.equal(request.snapshot, snapshot);
  }
});

void test('extra peak dimensions are parsed too', () => {
  const request = parseMigrationRequest({ ...designExample, peak: { cpu: '1', memory: '1Gi', 'ephemeral-storage': '10Gi' } });
  assert.equal(request.peak['ephemeral-storage'], 10 * 1024 ** 3);
});

void test('step timeouts in compound notation become milliseconds', () => {
  const request = parseMigrationRequest({ ...designExample, steps: [{ name: 's', run: ['x'], timeout: '1h30m' }] });
  assert.equal(request.steps[0]?.timeoutMs, 90 * 60_000);
});

void test('a tenant id of 63 characters, digits first, is accepted', () => {
  const tenant = '0' + 'a-'.repeat(31);
  assert.equal(tenant.length, 63);
  assert.equal(parseMigrationRequest({ ...designExample, tenant }).tenant, tenant);
});

void test('the tenant document parses steady-state quantities', () => {
  assert.deepEqual(
    parseTenantInput({ steadyState: { cpu: '500m', memory: '1Gi' }, data: '/srv/shop', runAs: { uid: 200000, gid: 200000 }, allowRoot: false }),
    {
      steadyState: { cpu: 500, memory: 1024 ** 3 },
      data: '/srv/shop',
      runAs: { uid: 200000, gid: 200000 },
      allowRoot: false,
    },
  );
});

void test('env values given as {secret} are plain values for the job, listed in secretEnv', () => {
  const r = parseMigrationRequest({
    issue: 'github:acme/platform#1',
    tenant: 'shop',
    peak: { cpu: 1, memory: '1Gi' },
    steps: [{ name: 'copy', run: ['true'] }],
    env: { SOURCE: 'old', DB_PASSWORD: { secret: 'hunter2' } },
  });
  assert.deepEqual(r.env, { SOURCE: 'old', DB_PASSWORD: 'hunter2' });
  assert.deepEqual(r.secretEnv, ['DB_PASSWORD']);
});
