/**
 * Tokens across the cluster: only the first node writes `<data-dir>/token`, and that admin token
 * works on every node (its digest is in the store), also after the first node restarts; a token
 * Ferry does not know is refused by every node; a filer token of the tokens file reads everywhere
 * and registers nowhere. A tenant registered without `node` lives on the node that took the request.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { call, removeDir, tempDir, writeTokensFile } from '../support/harness.ts';
import { clusterTest, registerTenant } from '../support/cluster.ts';

const tokensDir = tempDir('ferry-cluster-tokens-');
const FILER = 'filer-token-abcdef0123456789abcdef0123';
const tokensFile = writeTokensFile(tokensDir, [{ name: 'reader', role: 'filer', token: FILER }]);
test.after(() => removeDir(tokensDir));

clusterTest(
  'the admin token of the first node works on every node, an unknown token on none, a filer token reads everywhere',
  { nodes: 3, env: { FERRY_TOKENS_FILE: tokensFile } },
  async (cluster) => {
    const [n1, n2, n3] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    assert.ok(existsSync(join(n1.dataDir, 'token')), 'the first node writes the admin token');
    assert.ok(!existsSync(join(n2.dataDir, 'token')) && !existsSync(join(n3.dataDir, 'token')), 'the other nodes write none');

    // The admin token registers tenants through any node; each lives where it was registered.
    const shop = await registerTenant(n3, 'shop');
    assert.equal(shop.node, 'n3', 'without node, a tenant lives on the node that registered it');
    const mall = await registerTenant(n2, 'mall', { node: 'n1' });
    assert.equal(mall.node, 'n1', 'node names where the tenant lives');
    for (const via of cluster.nodes) {
      const tenants = await via.api<Array<{ id: string; node: string }>>('GET', '/v1/tenants');
      assert.equal(tenants.status, 200);
      assert.deepEqual(tenants.body.map((t) => `${t.id}@${t.node}`).sort(), ['mall@n1', 'shop@n3'], `${via.name} sees both tenants where they live`);
    }

    for (const via of cluster.nodes) {
      assert.equal((await call(via.url, 'not-a-token-ferry-knows-0123456789', 'GET', '/v1/nodes')).status, 401, `${via.name} refuses an unknown token`);
      assert.equal((await call(via.url, null, 'GET', '/v1/tenants')).status, 401, `${via.name} refuses no token`);
      assert.equal((await call(via.url, FILER, 'GET', '/v1/tenants')).status, 200, `${via.name} lets a filer read`);
      const put = await call(via.url, FILER, 'PUT', '/v1/tenants/other', { steadyState: { cpu: '1', memory: '512Mi' } });
      assert.equal(put.status, 403, `${via.name} refuses a filer registering a tenant`);
    }

    // The first node restarts on its data folder: the same token, still good everywhere.
    await n1.kill('SIGKILL');
    assert.equal((await n2.api('GET', '/v1/tenants')).status, 200, 'the token works while the first node is down');
    await n1.restart();
    assert.equal(readFileSync(join(n1.dataDir, 'token'), 'utf8').trim(), cluster.token, 'the admin token is kept');
    for (const via of cluster.nodes) assert.equal((await via.api('GET', '/v1/nodes')).status, 200, `${via.name} still takes it`);
  },
);
