/**
 * The shared lifecycle suite (STYLE.md §4): every substrate passes the same tests of TR-38..TR-43,
 * through the real HTTP API of a real Ferry.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test, type TestContext } from 'node:test';
import { removeDir, request, sh, startFerry, waitFor, type Ferry } from '../support/harness.ts';
import type { SubstrateKit } from './substrate-kit.ts';

const TERMINAL = ['succeeded', 'rejected', 'accepted-partial', 'abandoned', 'cancelled'];

export function defineLifecycleSuite(kit: SubstrateKit): void {
  void describe(`lifecycle on the ${kit.name} substrate`, () => {
    let ferry: Ferry | null = null;
    let skipReason: string | null = null;
    const tenants: string[] = [];

    beforeEach(async () => {
      skipReason = await kit.available();
      if (skipReason && process.env.CI === 'true') throw new Error(`${kit.name} substrate unavailable in CI: ${skipReason}`);
    });

    afterEach(async () => {
      if (!ferry) return;
      const f = ferry;
      ferry = null;
      // Leak check: close every issue used, then nothing Ferry-made may remain.
      const all = (await f.api('GET', '/v1/migrations')).body as Array<{ issue: string }>;
      for (const issue of new Set(all.map((m) => m.issue))) await f.api('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});
      const left = await kit.leftovers(f);
      await f.stop();
      for (const t of tenants.splice(0)) await kit.cleanupTenant(f, t);
      removeDir(f.dataDir);
      assert.deepEqual(left, [], 'the test left Ferry-made processes, containers or files behind');
    });

    async function start(t: TestContext, extra: Record<string, unknown> = {}): Promise<Ferry | null> {
      if (skipReason) {
        console.warn(`SKIPPED: ${kit.name} substrate unavailable: ${skipReason}`);
        t.skip(`${kit.name} substrate unavailable: ${skipReason}`);
        return null;
      }
      ferry = await startFerry({ ...kit.options(), ...extra });
      return ferry;
    }

    async function tenant(f: Ferry, id: string, steady: Record<string, string> = { cpu: '1', memory: '512Mi' }): Promise<void> {
      const data = kit.tenantData(id, f);
      if (!tenants.includes(id)) await kit.prepareTenant(f, id);
      const r = await f.api('PUT', `/v1/tenants/${id}`, { steadyState: steady, ...(data ? { data } : {}) });
      assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
      if (!tenants.includes(id)) tenants.push(id);
    }

    async function fileAndApprove(f: Ferry, doc: Record<string, unknown>): Promise<string> {
      const filed = await f.api('POST', '/v1/migrations', doc);
      assert.equal(filed.status, 201, JSON.stringify(filed.body));
      const approved = await f.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      return filed.body.id as string;
    }

    const get = async (f: Ferry, id: string) => (await f.api('GET', `/v1/migrations/${id}`)).body;
    const until = (f: Ferry, id: string, states: string[]) =>
      waitFor(
        `${id} to reach ${states.join('/')}`,
        async () => {
          const m = await get(f, id);
          return states.includes(m.state) ? m : null;
        },
        90_000,
      ); // generous: containers and snapshots are slow on a loaded 2-core machine

    void test('runs a one-shot job with the job environment, labelled as a migration, and never restarts it', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(
        f,
        request(
          'shop',
          [
            {
              name: 'env',
              run: sh(
                'env | grep ^FERRY_ | sort > "$FERRY_TENANT_DATA/env"; echo run >> "$FERRY_TENANT_DATA/runs"; echo "$SOURCE" > "$FERRY_TENANT_DATA/source"',
              ),
            },
          ],
          { env: { SOURCE: 'old-shop' } },
        ),
      );
      const m = await until(f, id, ['succeeded']);
      const env = (await kit.readTenantFile(f, 'shop', 'env')) ?? '';
      assert.match(env, new RegExp(`^FERRY_MIGRATION_ID=${id}$`, 'm'));
      assert.match(env, /^FERRY_ATTEMPT=1$/m);
      assert.match(env, /^FERRY_STEP=env$/m);
      assert.match(env, /^FERRY_TENANT=shop$/m);
      assert.match(env, /^FERRY_TENANT_DATA=.+$/m);
      assert.match(env, /^FERRY_SCRATCH=.+$/m);
      assert.doesNotMatch(env, /^FERRY_CHECKPOINT=/m);
      assert.equal(await kit.readTenantFile(f, 'shop', 'source'), 'old-shop\n');
      assert.equal(m.attempts.length, 1);
      assert.equal(m.limitsEnforced, true, 'declared peaks must be enforced as hard limits on this machine');
      // One-shot: after success, nothing runs it again.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await kit.readTenantFile(f, 'shop', 'runs'), 'run\n');
      assert.equal((await get(f, id)).attempts.length, 1);
    });

    void test("runs migrations of distinct tenants concurrently and one tenant's migrations one after the other", async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'alpha');
      await tenant(f, 'beta');
      const step = [{ name: 'work', run: sh('echo start >> "$FERRY_TENANT_DATA/trace"; sleep 2; echo end >> "$FERRY_TENANT_DATA/trace"') }];
      const a1 = await fileAndApprove(f, request('alpha', step));
      const a2 = await fileAndApprove(f, request('alpha', step));
      const b1 = await fileAndApprove(f, request('beta', step));
      // While a1 runs, b1 runs too, and a2 waits in queued.
      await waitFor('a1 and b1 running together', async () => (await get(f, a1)).state === 'running' && (await get(f, b1)).state === 'running');
      assert.equal((await get(f, a2)).state, 'queued');
      for (const id of [a1, a2, b1]) await until(f, id, ['succeeded']);
      const [ma1, ma2, mb1] = await Promise.all([get(f, a1), get(f, a2), get(f, b1)]);
      const span = (m: { attempts: Array<{ startedAt: string; endedAt: string }> }) =>
        [Date.parse(m.attempts[0]!.startedAt), Date.parse(m.attempts[0]!.endedAt)] as const;
      const [s1, e1] = span(ma1);
      const [s2] = span(ma2);
      const [sb, eb] = span(mb1);
      assert.ok(s1 < eb && sb < e1, 'alpha and beta migrations overlapped');
      assert.ok(s2 >= e1, "alpha's second migration started only after its first ended");
      // The jobs themselves never interleaved on one tenant.
      assert.equal(await kit.readTenantFile(f, 'alpha', 'trace'), 'start\nend\nstart\nend\n');
    });

    void test('the sum of running peaks never exceeds the node capacity', async (t) => {
      const f = await start(t, { capacity: { cpu: '1', memory: '1Gi' } });
      if (!f) return;
      await tenant(f, 'alpha');
      await tenant(f, 'beta');
      const step = [{ name: 'work', run: sh('echo start >> "$FERRY_TENANT_DATA/trace"; sleep 1; echo end >> "$FERRY_TENANT_DATA/trace"') }];
      const a = await fileAndApprove(f, { ...request('alpha', step), peak: { cpu: '1', memory: '256Mi' } });
      const b = await fileAndApprove(f, { ...request('beta', step), peak: { cpu: '1', memory: '256Mi' } });
      await waitFor('a to run', async () => (await get(f, a)).state === 'running');
      assert.equal((await get(f, b)).state, 'queued', 'b waits: both together would need 2 cpu of 1');
      await until(f, a, ['succeeded']);
      await until(f, b, ['succeeded']);
      const [ma, mb] = await Promise.all([get(f, a), get(f, b)]);
      assert.ok(Date.parse(mb.attempts[0].startedAt) >= Date.parse(ma.attempts[0].endedAt), 'never both at once');
    });

    void test('a failed step holds the migration: data, scratch and log stay, nothing later runs, nothing retries', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(
        f,
        request('shop', [
          { name: 'copy', run: sh('echo partial > "$FERRY_TENANT_DATA/part"; echo scratch > "$FERRY_SCRATCH/work"; echo copying') },
          { name: 'break', run: sh('echo about to fail; exit 7') },
          { name: 'never', run: sh('echo ran > "$FERRY_TENANT_DATA/never"') },
        ]),
      );
      const next = await fileAndApprove(f, request('shop', [{ name: 'later', run: sh('echo ran > "$FERRY_TENANT_DATA/later"') }]));
      const held = await until(f, id, ['held']);
      assert.equal(held.heldCause, 'exit-code');
      assert.equal(held.failedStep, 1);
      assert.equal(held.attempts[0].exitCode, 7);
      await new Promise((r) => setTimeout(r, 1500));
      const again = await get(f, id);
      assert.equal(again.state, 'held', 'nothing leaves held by itself');
      assert.equal(again.attempts.length, 1, 'no automatic retry');
      assert.equal((await get(f, next)).state, 'queued', "the tenant's next migration waits");
      assert.equal(await kit.readTenantFile(f, 'shop', 'part'), 'partial\n', 'partial data stays in place');
      assert.equal(await kit.readTenantFile(f, 'shop', 'never'), null, 'later steps never ran');
      assert.equal(await kit.readTenantFile(f, 'shop', 'later'), null, 'later migrations never ran');
      const kinds = again.artifacts.filter((a: { state: string }) => a.state === 'created').map((a: { kind: string }) => a.kind);
      assert.ok(kinds.includes('scratch') && kinds.includes('log'), `scratch and log kept: ${kinds}`);
      const log = await f.api('GET', `/v1/migrations/${id}/logs`);
      assert.match(log.body, /copying/);
      assert.match(log.body, /about to fail/);
      // Cancel the waiting one so the next test starts clean (closure does the rest).
      await f.api('POST', `/v1/migrations/${next}/cancel`, { reason: 'test done' });
    });

    void test('resume starts attempt n+1 at the failed step with its last checkpoint', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(
        f,
        request('shop', [
          { name: 'one', run: sh('echo one >> "$FERRY_TENANT_DATA/runs"') },
          {
            name: 'two',
            run: sh(
              'echo "two from ${FERRY_CHECKPOINT:-none}" >> "$FERRY_TENANT_DATA/runs"; echo "::ferry::checkpoint row-41"; echo "::ferry::progress 41/100"; if [ ! -e "$FERRY_SCRATCH/fixed" ]; then touch "$FERRY_SCRATCH/fixed"; exit 1; fi',
            ),
          },
        ]),
      );
      const held = await until(f, id, ['held']);
      assert.deepEqual(held.checkpoint, { step: 1, text: 'row-41' });
      assert.deepEqual(held.progress, { done: 41, total: 100 });
      const acted = await f.api('POST', `/v1/migrations/${id}/actions`, { action: 'resume', reason: 'fixed the source' });
      assert.equal(acted.status, 200, JSON.stringify(acted.body));
      const done = await until(f, id, ['succeeded']);
      assert.equal(done.attempts.length, 2);
      assert.equal(done.attempts[1].fromStep, 1);
      assert.equal(await kit.readTenantFile(f, 'shop', 'runs'), 'one\ntwo from none\ntwo from row-41\n');
      const resumeEvent = done.events.find((e: { kind: string }) => e.kind === 'resume');
      assert.equal(resumeEvent.actor, 'admin');
      assert.equal(resumeEvent.reason, 'fixed the source');
      // Applies once: a second resume is a wrong-state conflict.
      const twice = await f.api('POST', `/v1/migrations/${id}/actions`, { action: 'resume', reason: 'again' });
      assert.equal(twice.status, 409);
    });

    void test('wipe-and-retry restores the pre-migration snapshot and reruns from step 1', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      await kit.writeTenantFile(f, 'shop', 'orig', 'original\n');
      const id = await fileAndApprove(
        f,
        request('shop', [
          { name: 'mutate', run: sh('echo changed > "$FERRY_TENANT_DATA/orig"; echo x >> "$FERRY_TENANT_DATA/added"') },
          { name: 'check', run: sh('if [ ! -e "$FERRY_SCRATCH/ok" ]; then touch "$FERRY_SCRATCH/ok"; exit 1; fi') },
        ]),
      );
      const held = await until(f, id, ['held']);
      assert.ok(held.snapshot, 'a snapshot was taken before attempt 1 (snapshot: auto, data existed)');
      assert.equal(await kit.readTenantFile(f, 'shop', 'orig'), 'changed\n');
      const acted = await f.api('POST', `/v1/migrations/${id}/actions`, { action: 'wipe-and-retry', reason: 'start over' });
      assert.equal(acted.status, 200, JSON.stringify(acted.body));
      const done = await until(f, id, ['succeeded']);
      assert.equal(done.attempts[1].fromStep, 0);
      // Restored before step 1 ran again: `added` has one line, not two.
      assert.equal(await kit.readTenantFile(f, 'shop', 'added'), 'x\n');
      assert.equal(await kit.readTenantFile(f, 'shop', 'orig'), 'changed\n');
    });

    void test('wipe-and-retry runs the wipe step when there is no snapshot, and is refused with neither', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      await tenant(f, 'other');
      const failing = [
        { name: 'fill', run: sh('echo x >> "$FERRY_TENANT_DATA/filled"') },
        { name: 'gate', run: sh('if [ ! -e "$FERRY_SCRATCH/ok" ]; then touch "$FERRY_SCRATCH/ok"; exit 1; fi') },
      ];
      const withWipe = await fileAndApprove(
        f,
        request('shop', failing, { snapshot: 'never', wipe: sh('rm -f "$FERRY_TENANT_DATA/filled"; echo wiped >> "$FERRY_TENANT_DATA/wipes"') }),
      );
      const without = await fileAndApprove(f, request('other', failing, { snapshot: 'never' }));
      await until(f, withWipe, ['held']);
      await until(f, without, ['held']);
      const refused = await f.api('POST', `/v1/migrations/${without}/actions`, { action: 'wipe-and-retry', reason: 'try' });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'FERRY_NO_WIPE');
      assert.equal((await get(f, without)).state, 'held');
      const ok = await f.api('POST', `/v1/migrations/${withWipe}/actions`, { action: 'wipe-and-retry', reason: 'wipe it' });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const done = await until(f, withWipe, ['succeeded']);
      assert.equal(done.attempts[1].fromStep, -1);
      assert.equal(await kit.readTenantFile(f, 'shop', 'wipes'), 'wiped\n');
      assert.equal(await kit.readTenantFile(f, 'shop', 'filled'), 'x\n');
    });

    void test('accept-partial and abandon end the migration, keep the data, and free the tenant', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const failing = (mark: string) => request('shop', [{ name: 'half', run: sh(`echo ${mark} >> "$FERRY_TENANT_DATA/half"; exit 1`) }]);
      const first = await fileAndApprove(f, failing('first'));
      const second = await fileAndApprove(f, failing('second'));
      await until(f, first, ['held']);
      for (const bad of [
        { action: 'accept-partial' },
        { action: 'accept-partial', reason: '' },
        { action: 'explode', reason: 'x' },
        { action: 'abandon', reason: 'x', extra: 1 },
      ]) {
        const r = await f.api('POST', `/v1/migrations/${first}/actions`, bad);
        assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(bad)} → ${r.status}`);
        assert.equal((await get(f, first)).state, 'held');
      }
      const accepted = await f.api('POST', `/v1/migrations/${first}/actions`, { action: 'accept-partial', reason: 'good enough' });
      assert.equal(accepted.body.state, 'accepted-partial');
      const held2 = await until(f, second, ['held']);
      assert.equal(held2.attempts.length, 1);
      const abandoned = await f.api('POST', `/v1/migrations/${second}/actions`, { action: 'abandon', reason: 'not worth it' });
      assert.equal(abandoned.body.state, 'abandoned');
      assert.equal(await kit.readTenantFile(f, 'shop', 'half'), 'first\nsecond\n');
      const acted = await f.api('POST', `/v1/migrations/${second}/actions`, { action: 'resume', reason: 'too late' });
      assert.equal(acted.status, 409);
    });

    void test('a job over its memory peak is killed and the migration held with cause limit-exceeded', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop', { cpu: '1', memory: '32Mi' });
      const id = await fileAndApprove(f, {
        ...request('shop', [{ name: 'hog', run: sh('x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo survived > "$FERRY_TENANT_DATA/survived"') }]),
        peak: { cpu: '1', memory: '64Mi' },
      });
      const held = await until(f, id, ['held']);
      assert.equal(held.heldCause, 'limit-exceeded', held.heldDetail);
      assert.equal(await kit.readTenantFile(f, 'shop', 'survived'), null);
    });

    void test('a step over its timeout is stopped with cause deadline', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(f, request('shop', [{ name: 'slow', run: sh('sleep 60'), timeout: '1s' }]));
      const held = await until(f, id, ['held']);
      assert.equal(held.heldCause, 'deadline');
    });

    void test('the gate runs again: a tenant that shrank rejects a migration that never ran and refuses an action on one that did', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop', { cpu: '1', memory: '512Mi' });
      const doc = { ...request('shop', [{ name: 'x', run: sh('exit 1') }]), peak: { cpu: '2', memory: '1Gi' } };
      const ran = await fileAndApprove(f, doc);
      await until(f, ran, ['held']);
      const filed = await f.api('POST', '/v1/migrations', doc);
      assert.equal(filed.status, 201);
      await tenant(f, 'shop', { cpu: '1', memory: '256Mi' });
      const approve = await f.api('POST', `/v1/migrations/${filed.body.id}/approve`, {});
      assert.equal(approve.status, 422);
      assert.equal(approve.body.reasons[0].code, 'PEAK_EXCEEDS_CAP');
      assert.equal((await get(f, filed.body.id)).state, 'rejected');
      const act = await f.api('POST', `/v1/migrations/${ran}/actions`, { action: 'resume', reason: 'retry' });
      assert.equal(act.status, 422);
      const after = await get(f, ran);
      assert.equal(after.state, 'held');
      assert.equal(after.verdict.steadyState.memory, 512 * 1024 * 1024, 'the recorded verdict is the one it last ran with');
    });

    void test('closing the issue cancels what runs and removes every artifact but never tenant data', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      await tenant(f, 'other');
      await kit.writeTenantFile(f, 'shop', 'keep', 'tenant data\n');
      const issue = 'github:acme/platform#77';
      const failed = await fileAndApprove(f, request('shop', [{ name: 'w', run: sh('echo migrated > "$FERRY_TENANT_DATA/migrated"; exit 1') }], { issue }));
      await until(f, failed, ['held']);
      const running = await fileAndApprove(
        f,
        request('other', [{ name: 'long', run: sh('echo started > "$FERRY_TENANT_DATA/started"; sleep 60') }], { issue }),
      );
      await waitFor('the long job to start', async () => (await kit.readTenantFile(f, 'other', 'started')) !== null);
      const before = await kit.listTenantFiles(f, 'shop');
      const closed = await f.api('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});
      assert.equal(closed.status, 200, JSON.stringify(closed.body));
      assert.deepEqual(new Set(closed.body.cancelled), new Set([failed, running]));
      const kinds = closed.body.removed.map((a: { kind: string }) => a.kind).sort();
      assert.ok(kinds.includes('job') && kinds.includes('scratch') && kinds.includes('log') && kinds.includes('snapshot'), `removed ${kinds}`);
      for (const id of [failed, running]) {
        const m = await get(f, id);
        assert.equal(m.state, 'cancelled');
        assert.ok(
          m.artifacts.every((a: { state: string }) => a.state === 'removed'),
          'every artifact removed',
        );
        assert.ok(m.events.length >= 4, 'history stays');
      }
      assert.deepEqual(await kit.listTenantFiles(f, 'shop'), before, 'tenant data untouched');
      assert.equal(await kit.readTenantFile(f, 'shop', 'keep'), 'tenant data\n');
      assert.deepEqual(await kit.leftovers(f), []);
      // Idempotent, and reopening recreates nothing: a new filing on the closed issue is refused.
      const again = await f.api('POST', `/v1/issues/${encodeURIComponent(issue)}/close`, {});
      assert.equal(again.status, 200);
      assert.deepEqual(again.body.removed, []);
      const refiled = await f.api('POST', '/v1/migrations', request('shop', [{ name: 'x', run: sh('true') }], { issue }));
      assert.equal(refiled.status, 409);
      assert.equal(refiled.body.code, 'FERRY_ISSUE_CLOSED');
    });

    void test('a restarted runner re-attaches to a running job and records its outcome once, without re-running it', async (t) => {
      let f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(
        f,
        request('shop', [
          {
            name: 'long',
            run: sh('echo run >> "$FERRY_TENANT_DATA/ledger"; echo started > "$FERRY_TENANT_DATA/started"; sleep 3; echo "::ferry::checkpoint done-1"'),
          },
          { name: 'next', run: sh('echo next >> "$FERRY_TENANT_DATA/ledger"') },
        ]),
      );
      await waitFor('the job to start', async () => (await kit.readTenantFile(f!, 'shop', 'started')) !== null);
      await f.stop();
      ferry = null;
      f = ferry = await startFerry({ ...kit.options(), dataDir: f.dataDir });
      const m = await until(f, id, ['succeeded']);
      assert.equal(m.attempts.length, 1);
      assert.deepEqual(m.checkpoint, { step: 0, text: 'done-1' });
      assert.equal(await kit.readTenantFile(f, 'shop', 'ledger'), 'run\nnext\n', 'each step ran exactly once');
    });

    void test('cancel stops a running attempt first and frees the tenant', async (t) => {
      const f = await start(t);
      if (!f) return;
      await tenant(f, 'shop');
      const id = await fileAndApprove(
        f,
        request('shop', [{ name: 'long', run: sh('echo started > "$FERRY_TENANT_DATA/started"; sleep 60; echo finished > "$FERRY_TENANT_DATA/finished"') }]),
      );
      await waitFor('the job to start', async () => (await kit.readTenantFile(f, 'shop', 'started')) !== null);
      const r = await f.api('POST', `/v1/migrations/${id}/cancel`, { reason: 'wrong tenant' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.state, 'cancelled');
      assert.equal(r.body.attempts[0].cause, 'cancelled');
      const next = await fileAndApprove(f, request('shop', [{ name: 'x', run: sh('true') }]));
      await until(f, next, ['succeeded']);
      assert.equal(await kit.readTenantFile(f, 'shop', 'finished'), null);
      assert.ok(TERMINAL.includes((await get(f, id)).state));
    });
  });
}
