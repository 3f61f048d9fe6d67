/**
 * The `ferry` command against a real service: exit codes (0 ok, 2 usage, 3 rejected by policy,
 * 4 wrong state, 1 anything else), tables for people, JSON for scripts, and never a stack trace.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { removeDir, request, sh, startFerry, tempDir, waitFor, type Ferry } from '../support/harness.ts';
import { assertExit, closedPort, runCli, type CliResult } from './cli-process.ts';

const TERMINAL = ['succeeded', 'rejected', 'accepted-partial', 'abandoned', 'cancelled'];

void describe('ferry CLI', () => {
  let ferry: Ferry;
  let work: string;

  /** `ferry --url <service> --token <admin token> <args>` from an empty working folder. */
  const ferryCli = (...args: string[]): Promise<CliResult> => runCli(['--url', ferry.url, '--token', ferry.token, ...args], { cwd: work });

  function writeDoc(name: string, doc: unknown): string {
    const path = join(work, name);
    writeFileSync(path, name.endsWith('.json') ? JSON.stringify(doc) : toYaml(doc));
    return path;
  }

  const noop = (issue: number, extra: Record<string, unknown> = {}) =>
    request('shop', [{ name: 'noop', run: sh('true') }], { issue: `github:acme/platform#${issue}`, peak: { cpu: '1', memory: '2Gi' }, ...extra });

  before(async () => {
    work = tempDir('ferry-cli-work-');
    ferry = await startFerry();
    const put = await ferry.api('PUT', '/v1/tenants/shop', { steadyState: { cpu: '500m', memory: '1Gi' } });
    assert.equal(put.status, 201);
  });

  after(async () => {
    await ferry.service.runner.idle();
    await ferry.stop();
    removeDir(ferry.dataDir);
    removeDir(work);
  });

  void test('check of an admitted document exits 0 and prints the verdict table', async () => {
    const r = await ferryCli('check', writeDoc('ok.yaml', noop(1)));
    assertExit(r, 0);
    assert.match(r.stdout, /DIMENSION\s+PEAK\s+STEADY-STATE/);
    assert.match(r.stdout, /^cpu\s+1\s+500m\s/m);
    assert.match(r.stdout, /admitted/);
    assert.deepEqual((await ferry.api('GET', '/v1/migrations')).body, [], 'check files nothing');
  });

  void test('check of a JSON document (.json) works as well', async () => {
    assertExit(await ferryCli('check', writeDoc('ok.json', noop(1))), 0);
  });

  void test('check of an over-cap document exits 3 and prints the reason', async () => {
    const r = await ferryCli('check', writeDoc('over.yaml', noop(1, { peak: { cpu: '1001m', memory: '2Gi' } })));
    assertExit(r, 3);
    assert.match(r.stderr, /PEAK_EXCEEDS_CAP/);
    assert.match(r.stderr, /cpu peak 1001m exceeds 2 x steady-state 500m of tenant shop/);
    assert.match(r.stderr, /FAIL/);
  });

  void test('filing an over-cap document exits 3 and files nothing', async () => {
    const r = await ferryCli('file', writeDoc('over-file.yaml', noop(1, { peak: { cpu: '1', memory: '3Gi' } })));
    assertExit(r, 3);
    assert.match(r.stderr, /memory peak/);
    assert.deepEqual((await ferry.api('GET', '/v1/migrations')).body, []);
  });

  void test('a document with an unknown field exits 2 and names it', async () => {
    const r = await ferryCli('check', writeDoc('unknown.yaml', noop(1, { retries: 3 })));
    assertExit(r, 2);
    assert.match(r.stderr, /retries/);
  });

  void test('a document that is not YAML, or a file that does not exist, exits 2', async () => {
    const bad = join(work, 'broken.yaml');
    writeFileSync(bad, 'issue: [unclosed\n  tenant: shop\n');
    const badJson = join(work, 'broken.json');
    writeFileSync(badJson, '{"issue": ');
    const [yaml, json, missing] = await Promise.all([ferryCli('check', bad), ferryCli('check', badJson), ferryCli('check', join(work, 'no-such-file.yaml'))]);
    assertExit(yaml, 2);
    assertExit(json, 2);
    assertExit(missing, 2);
    assert.match(missing.stderr, /cannot read/);
  });

  void test('an unknown command, an unknown flag or a missing argument exits 2', async () => {
    const results = await Promise.all([
      ferryCli('frobnicate'),
      ferryCli('ls', '--colour', 'red'),
      ferryCli('tenant', 'put', 'blog', '--cpu', '1'), // --memory is required
      ferryCli('approve'),
      ferryCli('act', 'm-abc-12345678', 'abandon'), // --reason is required
    ]);
    for (const r of results) assertExit(r, 2);
    assert.equal((await ferry.api('GET', '/v1/tenants/blog')).status, 404);
  });

  void test('an invalid tenant id or quantity exits 2', async () => {
    const [name, r] = await Promise.all([
      ferryCli('tenant', 'put', 'Bad_Name', '--cpu', '1', '--memory', '1Gi'),
      ferryCli('tenant', 'put', 'blog', '--cpu', 'lots', '--memory', '1Gi'),
    ]);
    assertExit(name, 2);
    assertExit(r, 2);
    assert.match(r.stderr, /lots/);
    assert.equal((await ferry.api('GET', '/v1/tenants/blog')).status, 404);
  });

  void test('tenant put then tenant ls shows the tenant; --json parses', async () => {
    const put = await ferryCli('tenant', 'put', 'wiki', '--cpu', '250m', '--memory', '512Mi');
    assertExit(put, 0);
    assert.match(put.stdout, /tenant wiki: steady-state cpu=250m memory=512Mi/);
    const [ls, json] = await Promise.all([ferryCli('tenant', 'ls'), ferryCli('--json', 'tenant', 'ls')]);
    assertExit(ls, 0);
    assert.match(ls.stdout, /^TENANT\s+STEADY-STATE\s+DATA/m);
    assert.match(ls.stdout, /^wiki\s+cpu=250m memory=512Mi\s/m);
    assert.match(ls.stdout, /^shop\s+cpu=500m memory=1Gi\s/m);
    assertExit(json, 0);
    const list = JSON.parse(json.stdout) as Array<{ id: string; steadyState: Record<string, number> }>;
    assert.deepEqual(list.find((t) => t.id === 'wiki')?.steadyState, { cpu: 250, memory: 512 * 1024 ** 2 });
  });

  void test('file, ls and show; act on a migration that is not held exits 4', async () => {
    const filed = await ferryCli('--json', 'file', writeDoc('filed.yaml', noop(10)));
    assertExit(filed, 0);
    const m = JSON.parse(filed.stdout) as { id: string; state: string; issue: string };
    assert.equal(m.state, 'filed');
    assert.equal(m.issue, 'github:acme/platform#10');

    const [ls, lsJson, show, showJson, act, actJson] = await Promise.all([
      ferryCli('ls', '--tenant', 'shop', '--state', 'filed'),
      ferryCli('--json', 'ls', '--issue', 'github:acme/platform#10'),
      ferryCli('show', m.id),
      ferryCli('--json', 'show', m.id),
      ferryCli('act', m.id, 'abandon', '--reason', 'testing'),
      ferryCli('--json', 'act', m.id, 'resume', '--reason', 'testing'),
    ]);
    assertExit(ls, 0);
    assert.match(ls.stdout, /^ID\s+TENANT\s+STATE\s+ATTEMPTS\s+ISSUE\s+UPDATED/m);
    assert.match(ls.stdout, new RegExp(`^${m.id}\\s+shop\\s+filed\\s+0\\s+github:acme/platform#10\\s`, 'm'));
    assertExit(lsJson, 0);
    assert.deepEqual(
      (JSON.parse(lsJson.stdout) as Array<{ id: string }>).map((x) => x.id),
      [m.id],
    );

    assertExit(show, 0);
    assert.match(show.stdout, new RegExp(`^${m.id}\\s+filed\\s+tenant shop\\s+issue github:acme/platform#10`, 'm'));
    assert.match(show.stdout, /^AT\s+ACTOR\s+EVENT\s+FROM\s+TO\s+REASON/m);
    assertExit(showJson, 0);
    assert.equal((JSON.parse(showJson.stdout) as { events: unknown[] }).events.length, 1);

    assertExit(act, 4);
    assert.match(act.stderr, /held/);
    assertExit(actJson, 4);
    assert.equal((JSON.parse(actJson.stdout) as { code: string }).code, 'FERRY_WRONG_STATE', '--json prints the problem on stdout');
    assert.equal((await ferry.api('GET', `/v1/migrations/${m.id}`)).body.state, 'filed');
  });

  void test('an unknown action or an unknown migration is not exit 0 or 4', async () => {
    const filed = await ferry.api('POST', '/v1/migrations', noop(11));
    assert.equal(filed.status, 201);
    assertExit(await ferryCli('act', filed.body.id, 'retry-forever', '--reason', 'x'), 2);
    const unknown = await ferryCli('show', 'm-zzzzzz-00000000');
    assertExit(unknown, 1);
    assert.match(unknown.stderr, /no migration/);
  });

  void test('approving a migration twice: the second exits 4', async () => {
    const filed = await ferry.api('POST', '/v1/migrations', noop(20));
    assert.equal(filed.status, 201);
    const id = filed.body.id as string;
    const first = await ferryCli('approve', id);
    assertExit(first, 0);
    assert.match(first.stdout, new RegExp(`${id} approved and (queued|running|succeeded)`));
    const second = await ferryCli('approve', id);
    assertExit(second, 4);
    assert.match(second.stderr, /approve applies only to a migration that is filed/);
    // Let the approved no-op finish before the service stops.
    await waitFor('the approved migration to finish', async () => TERMINAL.includes((await ferry.api('GET', `/v1/migrations/${id}`)).body.state));
  });

  void test('cancel and close-issue exit 0; cancelling again exits 4', async () => {
    const filed = await ferry.api('POST', '/v1/migrations', noop(30));
    const id = filed.body.id as string;
    assertExit(await ferryCli('cancel', id, '--reason', 'not needed'), 0);
    assertExit(await ferryCli('cancel', id), 4);
    const close = await ferryCli('--json', 'close-issue', 'github:acme/platform#30');
    assertExit(close, 0);
    assert.equal((JSON.parse(close.stdout) as { issue: string }).issue, 'github:acme/platform#30');
  });

  void test('an unreachable server or a wrong token exits 1 with a message, not a stack', async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const [down, wrong] = await Promise.all([
      runCli(['--url', closed, '--token', ferry.token, 'ls'], { cwd: work }),
      runCli(['--url', ferry.url, '--token', 'wrong-token-0123456789', 'ls'], { cwd: work }),
    ]);
    assertExit(down, 1);
    assert.match(down.stderr, new RegExp(`cannot reach Ferry at ${closed}`));
    assertExit(wrong, 1);
    assert.match(wrong.stderr, /token/);
  });
});
