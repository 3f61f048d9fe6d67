/**
 * Ferry's folders are Ferry's (0700, tightened when found looser); a migration's scratch and a
 * tenant's new data folder belong to the tenant's identity (0700). Metadata files are written
 * atomically, and a damaged one is reported and skipped, never a reason to stop listing.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProcessSubstrate } from '../../../src/substrates/process/process-substrate.ts';
import { removeDir, tempDir } from '../../support/harness.ts';
import { KIT_RUN_AS, processKit } from './process-kit.ts';

void test('roots are created 0700 and tightened to 0700 when they exist looser', async () => {
  const dataDir = tempDir('ferry-roots-');
  try {
    mkdirSync(join(dataDir, 'logs'), { mode: 0o755 });
    mkdirSync(join(dataDir, 'tenants'), { mode: 0o777 });
    const substrate = new ProcessSubstrate({ dataDir, spawnerPath: null, isolation: 'off' });
    await substrate.init();
    await substrate.close();
    for (const root of ['jobs', 'scratch', 'snapshots', 'logs', 'tenants']) {
      assert.equal(statSync(join(dataDir, root)).mode & 0o777, 0o700, `${root} is not 0700`);
    }
  } finally {
    removeDir(dataDir);
  }
});

void test("scratch and a new data folder belong to the tenant's identity", { timeout: 30_000 }, async (t) => {
  if (process.geteuid?.() !== 0) return t.skip('only root can hand folders over');
  const kit = await processKit();
  try {
    const { spec } = kit.step(['true']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    const scratch = statSync(spec.scratchRef);
    assert.deepEqual([scratch.uid, scratch.gid, scratch.mode & 0o777], [KIT_RUN_AS.uid, KIT_RUN_AS.gid, 0o700]);
    const said = await kit.substrate.adoptTenantData(spec.tenant);
    const data = kit.substrate.tenantData(spec.tenant);
    assert.equal(said, `created ${data} for uid ${KIT_RUN_AS.uid} gid ${KIT_RUN_AS.gid} (mode 0700)`);
    const folder = statSync(data);
    assert.deepEqual([folder.uid, folder.gid, folder.mode & 0o777], [KIT_RUN_AS.uid, KIT_RUN_AS.gid, 0o700]);
  } finally {
    await kit.cleanup();
  }
});

void test('listLabelled skips and reports empty or broken metadata, and lists the rest', { timeout: 30_000 }, async () => {
  const warnings: string[] = [];
  const kit = await processKit({ warn: (msg) => warnings.push(msg) });
  try {
    const { spec } = kit.step(['true']);
    await kit.substrate.createScratch(spec.scratchRef, spec);
    const root = join(kit.dataDir, 'scratch');
    writeFileSync(join(root, 'm-crashed.ferry.json'), '');
    writeFileSync(join(root, 'm-garbled.ferry.json'), '{"migrationId":');
    writeFileSync(join(root, 'm-wrong.ferry.json'), '[1,2]');
    const listed = await kit.substrate.listLabelled();
    assert.deepEqual(listed, [{ kind: 'scratch', ref: spec.scratchRef, migrationId: spec.migrationId, issue: spec.issue }]);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    for (const name of ['m-crashed', 'm-garbled', 'm-wrong'])
      assert.ok(
        warnings.some((w) => w.includes(`${name}.ferry.json`)),
        name,
      );
    // Written through a temporary file that is renamed: none is left behind.
    assert.deepEqual(
      readdirSync(root).filter((n) => n.includes('.tmp')),
      [],
    );
  } finally {
    await kit.cleanup();
  }
});
