/**
 * Where a token may go, as pure functions of the URL and where the token came from: the local
 * token only to loopback, an explicit one anywhere but with a warning over plain http off this
 * host, and a malformed one nowhere, described without any of it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FerryError } from '../../src/core/errors.ts';
import { checkToken, displayUrl, isLoopbackHost, parseServerUrl, redact, tokenPolicy } from '../../src/cli/token-policy.ts';

const host = (url: string) => new URL(url).hostname;

void describe('token policy', () => {
  void test('loopback is 127.0.0.0/8, ::1 and localhost, in every spelling URL parsing normalises', () => {
    for (const url of [
      'http://127.0.0.1:7070',
      'http://127.255.3.4',
      'http://localhost:1',
      'http://LOCALHOST.',
      'http://[::1]:7070',
      'http://[0:0:0:0:0:0:0:1]/',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://[::ffff:127.0.0.1]/',
    ]) {
      assert.equal(isLoopbackHost(host(url)), true, url);
    }
    for (const url of [
      'http://10.0.0.1',
      'http://0.0.0.0',
      'http://[::]/',
      'http://128.0.0.1',
      'http://127.0.0.1.nip.io',
      'http://localhost.example.com',
      'http://mylocalhost',
      'http://[::ffff:10.0.0.1]/',
      'http://127.0.0.1@10.0.0.1/',
      'http://example.invalid',
    ]) {
      assert.equal(isLoopbackHost(host(url)), false, url);
    }
  });

  void test('the local token is refused off loopback, whatever named the URL, with what to do instead', () => {
    for (const source of ['flag', 'env', 'data-dir', 'default'] as const) {
      assert.throws(
        () => tokenPolicy(new URL('http://10.0.0.5:7070'), source, 'data-dir'),
        (err: unknown) => err instanceof FerryError && err.code === 'FERRY_INVALID_REQUEST' && /--token or FERRY_TOKEN/.test(err.message),
      );
    }
    assert.throws(() => tokenPolicy(new URL('https://ferry.example.com'), 'flag', 'data-dir'), /loopback/);
    assert.equal(tokenPolicy(new URL('http://127.0.0.1:7070'), 'data-dir', 'data-dir'), null);
    assert.equal(tokenPolicy(new URL('http://localhost:7070'), 'flag', 'data-dir'), null);
  });

  void test('an explicit token over plain http off this host gives a warning; https, loopback or no token give none', () => {
    for (const source of ['flag', 'env'] as const) {
      const warning = tokenPolicy(new URL('http://10.0.0.5:7070'), 'flag', source);
      assert.match(warning ?? '', /plain http to 10\.0\.0\.5:7070/);
      assert.equal(tokenPolicy(new URL('https://10.0.0.5:7070'), 'flag', source), null);
      assert.equal(tokenPolicy(new URL('http://127.0.0.1:7070'), 'flag', source), null);
    }
    assert.equal(tokenPolicy(new URL('http://10.0.0.5:7070'), 'flag', null), null);
  });

  void test('a malformed token is refused and nothing of it is in the message', () => {
    for (const token of [
      'qz7abc\nwk9def',
      'qz7abc\r\nX-Injected: 1',
      'qz7abc wk9def',
      'qz7abc\twk9def',
      'qz7abc\u0000wk9def',
      'qz7abc\u007fwk9def',
      'qz7ébc-wk9def',
      'qz7abc\u2028wk9def',
    ]) {
      assert.throws(
        () => checkToken(token, 'env'),
        (err: unknown) => {
          assert.ok(err instanceof FerryError && /malformed/.test(err.message));
          for (const part of token.split(/[^A-Za-z0-9-]+/).filter((p) => p.length >= 3))
            assert.ok(!err.message.includes(part), `${JSON.stringify(part)} shown`);
          return true;
        },
      );
    }
    assert.doesNotThrow(() => checkToken('a1B2-c3_d4.e5~f6+g7/h8=', 'flag'));
  });

  void test('a URL is shown without user:password@, and a bad one is not shown at all', () => {
    assert.equal(displayUrl(new URL('http://user:secret-pass@127.0.0.1:7070/')), 'http://127.0.0.1:7070');
    assert.throws(
      () => parseServerUrl('ftp://user:secret-pass@host', 'flag'),
      (err: Error) => !err.message.includes('secret-pass'),
    );
    assert.throws(
      () => parseServerUrl('not a url secret-pass', 'env'),
      (err: Error) => /FERRY_URL/.test(err.message) && !err.message.includes('secret-pass'),
    );
  });

  void test('redact removes every occurrence, JSON-escaped ones too', () => {
    assert.equal(redact('a tok"en b tok"en', 'tok"en'), 'a <token> b <token>');
    assert.equal(redact(JSON.stringify({ detail: 'x tok"en' }), 'tok"en'), '{"detail":"x <token>"}');
  });
});
