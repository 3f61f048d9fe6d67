/**
 * A scratch folder's label file is written behind createScratch, off the job's start path: whatever
 * reads or removes labels (listLabelled, remove, close) waits for it, so the orphan sweep sees every
 * scratch and a removed scratch leaves no label behind.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProcessSubstrate } from '../../../src/substrates/process/process-substrate.ts';
import { removeDir, tempDir } from '../../support/harness.ts';
import { processKit } from './process-kit.ts';

void test('listLabelled sees a scratch made just before, and removing it at once leaves nothing', { timeout: 30_000 }, async () => {
  const kit = await processKit();
  try {
    const root = join(kit.dataDir, 'scratch');
    const kept = kit.step(['true']).spec;
    await kit.substrate.createScratch(kept.scratchRef, kept);
    assert.deepEqual(await kit.substrate.listLabelled(), [{ kind: 'scratch', ref: kept.scratchRef, migrationId: kept.migrationId, issue: kept.issue }]);

    const gone = kit.step(['true']).spec;
    await kit.substrate.createScratch(gone.scratchRef, gone);
    await kit.substrate.remove('scratch', gone.scratchRef);
    assert.deepEqual(
      readdirSync(root).filter((name) => name.startsWith(gone.migrationId)),
      [],
    );
    assert.deepEqual(
      (await kit.substrate.listLabelled()).map((o) => o.migrationId),
      [kept.migrationId],
    );
  } finally {
    await kit.cleanup();
  }
});

void test('close waits for the labels being written', { timeout: 30_000 }, async () => {
  const dataDir = tempDir('ferry-labels-');
  try {
    const substrate = new ProcessSubstrate({ dataDir, spawnerPath: null, isolation: 'off' });
    await substrate.init();
    const tenant = { id: 'shop', steadyState: { cpu: 1000, memory: 1 << 28 }, data: '', runAs: { uid: 200100, gid: 200100 }, allowRoot: false };
    const ref = substrate.scratchRef('m-closing');
    await substrate.createScratch(ref, { migrationId: 'm-closing', issue: 'github:acme/platform#1', tenant });
    await substrate.close();
    assert.deepEqual(JSON.parse(readFileSync(`${ref}.ferry.json`, 'utf8')), { migrationId: 'm-closing', issue: 'github:acme/platform#1' });
  } finally {
    removeDir(dataDir);
  }
});
