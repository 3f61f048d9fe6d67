import { test } from 'node:test';
import assert from 'node:assert/strict';
import { folderDataProblem, volumeDataProblem, type TenantDataContext } from '../../src/core/tenant-data.ts';

const ctx: TenantDataContext = {
  tenantId: 'shop',
  defaultData: '/var/lib/ferry/tenants/shop',
  ferryPaths: ['/var/lib/ferry', '/etc/ferry/tokens.yaml'],
  others: [{ id: 'blog', data: '/srv/blog' }],
};

void test('absolute, normalised folders of its own are accepted, and so is the default folder inside Ferry', () => {
  assert.equal(folderDataProblem('/srv/shop', ctx), null);
  assert.equal(folderDataProblem('/srv/blogger', ctx), null, 'a common prefix is not an overlap');
  assert.equal(folderDataProblem('/var/lib/ferry/tenants/shop', ctx), null);
});

void test('relative, unnormalised and root paths are refused with the shape to use', () => {
  for (const bad of ['srv/shop', '../../../etc', '/', '/srv/./shop', '/srv/../etc', '/srv//shop', '/srv/shop/']) {
    const problem = folderDataProblem(bad, ctx);
    assert.ok(problem, `${bad} must be refused`);
    assert.match(problem, /absolute path|normalised/);
  }
});

void test("Ferry's state and its token files are refused, other than the tenant's default folder", () => {
  assert.match(folderDataProblem('/var/lib/ferry', ctx) ?? '', /overlaps Ferry's own state/);
  assert.match(folderDataProblem('/var/lib/ferry/token', ctx) ?? '', /overlaps Ferry's own state/);
  assert.match(folderDataProblem('/var/lib/ferry/tenants/blog', ctx) ?? '', /overlaps Ferry's own state/);
  assert.match(folderDataProblem('/var', ctx) ?? '', /overlaps Ferry's own state/, 'a parent of Ferry holds Ferry too');
  assert.match(folderDataProblem('/etc/ferry/tokens.yaml', ctx) ?? '', /overlaps Ferry's own state/);
});

void test("another tenant's folder, its parent or a folder inside it is refused", () => {
  for (const bad of ['/srv/blog', '/srv', '/srv/blog/uploads']) assert.match(folderDataProblem(bad, ctx) ?? '', /overlaps tenant blog's data/);
});

void test('volumes: a valid name of its own', () => {
  assert.equal(volumeDataProblem('ferry-tenant-shop', ctx), null);
  assert.match(volumeDataProblem('../x', ctx) ?? '', /not a volume name/);
  assert.match(volumeDataProblem('srv/blog', ctx) ?? '', /not a volume name/);
  assert.match(volumeDataProblem('/srv/blog', { ...ctx, others: [{ id: 'blog', data: '/srv/blog' }] }) ?? '', /not a volume name/);
  assert.match(volumeDataProblem('vol-b', { ...ctx, others: [{ id: 'blog', data: 'vol-b' }] }) ?? '', /already tenant blog's data/);
});
