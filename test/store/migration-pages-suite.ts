/**
 * Part of the store conformance suite (run by store.sqlite.conformance and store.postgres.conformance):
 * listMigrations pages by keyset, `after` the (createdAt, id) of the last migration shown, in both
 * orders and under every filter, and the pages together are the whole list, each migration once,
 * even when several were filed in the same millisecond.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { admit } from '../../src/core/admission.ts';
import type { MigrationState, Resources } from '../../src/core/types.ts';
import type { MigrationFilter } from '../../src/store/migration-records.ts';
import type { MigrationRecord } from '../../src/store/records.ts';
import type { Store } from '../../src/store/store.ts';
import type { OpenedStore, StoreSuiteOptions } from './store-suite.ts';

const STEADY: Resources = { cpu: 1000, memory: 1024 ** 3 };
const PEAK: Resources = { cpu: 1500, memory: 2 * 1024 ** 3 };
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

/** Every page of `filter`, `size` at a time, each after the last one of the page before. */
async function allPages(store: Store, filter: MigrationFilter, size: number): Promise<string[]> {
  const seen: string[] = [];
  let after: MigrationFilter['after'];
  for (let n = 0; n < 100; n++) {
    const page = await store.listMigrations({ ...filter, ...(after ? { after } : {}), limit: size });
    seen.push(...page.map((m) => m.id));
    const last = page.at(-1);
    if (page.length < size || !last) return seen;
    after = { createdAt: last.createdAt, id: last.id };
  }
  throw new Error('more than 100 pages');
}

export function defineMigrationPagesSuite(name: string, open: () => Promise<OpenedStore>, options: StoreSuiteOptions = {}): void {
  void describe(`store conformance: ${name}: migration pages`, () => {
    let opened: OpenedStore | null = null;
    afterEach(async () => {
      const o = opened;
      opened = null;
      await o?.cleanup();
    });

    void test('listMigrations pages by (createdAt, id) in both orders and under every filter; together the pages are the list', async (t) => {
      if (options.ready && !(await options.ready(t))) return;
      opened = await open();
      const store = opened.store;
      for (const id of ['shop', 'blog']) {
        await store.putTenant(id, { steadyState: STEADY, data: `/srv/${id}`, runAs: null, allowRoot: false }, { first: 200000, last: 299999 }, new Date(T0));
      }
      // Three at each of three instants, filed out of id order: ties are broken by id.
      const filed: MigrationRecord[] = [];
      const hex = ['0000000c', '0000000a', '0000000b'];
      for (let i = 0; i < 9; i++) {
        const at = T0 + 1000 * Math.floor(i / 3);
        const tenant = i % 2 === 0 ? 'shop' : 'blog';
        const issue = `github:acme/platform#${1 + (i % 2)}`;
        const id = `m-${at.toString(36)}-${hex[i % 3]}`;
        filed.push(
          await store.insertMigration(
            {
              id,
              issue,
              tenant,
              request: { issue, tenant, peak: PEAK, steps: [{ name: 'copy', run: ['true'] }], snapshot: 'auto', env: {} },
              verdict: admit({ tenantId: tenant, peak: PEAK, tenant: { id: tenant, steadyState: STEADY }, capacity: {}, now: new Date(T0) }),
              filedBy: 'alice',
            },
            { actor: 'alice', kind: 'file' },
            new Date(at),
          ),
        );
      }
      for (const m of filed.filter((_, i) => i % 3 === 1)) {
        await store.transition({ id: m.id, from: 'filed', patch: {}, event: { actor: 'bob', kind: 'approve' }, now: new Date(T0 + 5000) });
      }
      const byKey = (a: MigrationRecord, b: MigrationRecord) => a.createdAt.localeCompare(b.createdAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      const filters: Array<[string, MigrationFilter, (m: MigrationRecord) => boolean]> = [
        ['all', {}, () => true],
        ['state filed', { state: ['filed'] }, (m) => filed.indexOf(m) % 3 !== 1],
        ['states filed and approved', { state: ['filed', 'approved'] as MigrationState[] }, () => true],
        ['tenant shop', { tenant: 'shop' }, (m) => m.tenant === 'shop'],
        ['tenants blog', { tenants: ['blog'] }, (m) => m.tenant === 'blog'],
        ['issue #1', { issue: 'github:acme/platform#1' }, (m) => m.issue === 'github:acme/platform#1'],
      ];
      for (const [label, filter, keep] of filters) {
        const expected = filed
          .filter(keep)
          .sort(byKey)
          .map((m) => m.id);
        for (const size of [1, 2, 4]) {
          assert.deepEqual(await allPages(store, { ...filter, order: 'asc' }, size), expected, `${label}, oldest first, ${size} a page`);
          assert.deepEqual(await allPages(store, { ...filter, order: 'desc' }, size), [...expected].reverse(), `${label}, newest first, ${size} a page`);
        }
      }
    });
  });
}
