import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../src/core/errors.ts';
import { parseMigrationRequest } from '../../src/core/request-schema.ts';
import { findRequestBlock, readRequestBlock } from '../../src/tracker/request-block.ts';
import { fixture } from './helpers.ts';

const THREAD = 'github:acme/platform#742';

const REQUEST = ['tenant: shop', 'peak: { cpu: 1500m, memory: 2Gi }', 'steps:', '  - name: copy-files', '    run: ["true"]'];

function invalid(pattern: RegExp, line?: number) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof FerryError, String(err));
    assert.equal(err.code, 'FERRY_INVALID_REQUEST');
    assert.match(err.message, pattern);
    if (line !== undefined) assert.equal(err.details.line, line);
    return true;
  };
}

void test('the first ```ferry block is the request; its content and first line are returned', () => {
  const body = ['Please migrate.', '', '```ferry', ...REQUEST, '```', '', '```ferry', 'tenant: other', '```'].join('\n');
  assert.deepEqual(findRequestBlock(body), { source: REQUEST.join('\n'), firstLine: 4 });
});

void test('~~~ fences work, and so does an info string with more words after ferry', () => {
  const body = ['~~~~ ferry request', ...REQUEST, '~~~~'].join('\n');
  assert.equal(findRequestBlock(body)?.source, REQUEST.join('\n'));
});

void test('other fenced blocks are skipped, including a ferry example quoted inside one', () => {
  const body = ['```yaml', 'tenant: not-this', '```', '````markdown', '```ferry', 'tenant: nor-this', '```', '````', '```ferry', ...REQUEST, '```'].join('\n');
  const block = findRequestBlock(body);
  assert.equal(block?.source, REQUEST.join('\n'));
  assert.equal(block?.firstLine, 10);
});

void test('an issue without a ferry block is not a request: null', () => {
  assert.equal(findRequestBlock('Just a discussion.\n\n```sh\nls\n```\n'), null);
  assert.equal(readRequestBlock('Just a discussion.', THREAD), null);
  assert.equal(findRequestBlock('inline ```ferry``` is not a fence'), null);
});

void test('CRLF bodies (web forms) and an indented fence are handled', () => {
  const body = ['Intro', '  ```ferry', ...REQUEST.map((l) => `  ${l}`), '  ```'].join('\r\n');
  assert.equal(findRequestBlock(body)?.source, REQUEST.join('\n'));
});

void test('a ferry block that is never closed is an error naming its line', () => {
  assert.throws(() => findRequestBlock(['a', '```ferry', 'tenant: shop'].join('\n')), invalid(/opened on line 2 of the issue is never closed/, 2));
});

void test('the issue field may be omitted: it becomes the thread ref', () => {
  const doc = readRequestBlock(['```ferry', ...REQUEST, '```'].join('\n'), THREAD);
  assert.equal(doc?.issue, THREAD);
  assert.equal(doc?.tenant, 'shop');
});

void test('an issue field naming this same thread (full, bare #N, other letter case) is accepted', () => {
  for (const issue of [THREAD, '"#742"', 'github:Acme/Platform#742']) {
    const doc = readRequestBlock(['```ferry', `issue: ${issue}`, ...REQUEST, '```'].join('\n'), THREAD);
    assert.equal(doc?.issue, THREAD);
  }
});

void test('an issue field naming another thread is an error telling the user to remove it', () => {
  const body = ['Text', '```ferry', ...REQUEST, 'issue: github:acme/platform#9', '```'].join('\n');
  assert.throws(
    () => readRequestBlock(body, THREAD),
    invalid(/issue field names github:acme\/platform#9, but the block is in github:acme\/platform#742; remove the issue field/, 8),
  );
  assert.throws(() => readRequestBlock(['```ferry', 'issue: 742', ...REQUEST, '```'].join('\n'), THREAD), invalid(/remove the issue field/));
});

void test('broken YAML is a clear error with the line of the issue it is on', () => {
  const body = ['Intro', '', '```ferry', 'tenant: shop', 'peak: { cpu: 1500m, memory: 2Gi', 'steps: []', '```'].join('\n');
  assert.throws(
    () => readRequestBlock(body, THREAD),
    invalid(/^the ferry block is not valid YAML at line \d+ of the issue \(line \d+ of the block\): .+; fix the block and edit the issue$/),
  );
  const dup = ['```ferry', 'tenant: shop', 'tenant: other', '```'].join('\n');
  assert.throws(() => readRequestBlock(dup, THREAD), invalid(/at line 3 of the issue \(line 2 of the block\): Map keys must be unique/, 3));
});

void test('an empty block, or one that is not a mapping, says what to write', () => {
  assert.throws(() => readRequestBlock('```ferry\n```', THREAD), invalid(/is empty; write the request in it/));
  assert.throws(() => readRequestBlock('```ferry\n- a\n- b\n```', THREAD), invalid(/must be a YAML mapping .* not a list/));
});

void test('the block of the Gitea fixture is a valid request for the core schema, filed in its thread', () => {
  const payload = fixture('gitea-issues-opened.json');
  const document = readRequestBlock((payload.issue as { body: string }).body, 'gitea:acme/platform#12');
  assert.ok(document);
  const request = parseMigrationRequest(document);
  assert.equal(request?.issue, 'gitea:acme/platform#12');
  assert.equal(request?.tenant, 'shop');
  assert.deepEqual(request?.peak, { cpu: 1500, memory: 2 * 1024 ** 3 });
  assert.deepEqual(request?.steps[0]?.run, ['sh', '-c', 'cp -a /srv/old-shop/. "$FERRY_TENANT_DATA"/']);
});
