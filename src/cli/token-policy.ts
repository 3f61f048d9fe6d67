/**
 * Where the CLI may send a token, decided before any connection: pure functions of the URL, the
 * token and where each came from. The admin token an embedded install leaves in <data-dir>/token
 * goes only to a loopback address; a token given explicitly goes where it is told, with a warning
 * when that is plain http off this host. Nothing here ever puts a token in a message.
 */
import { FerryError } from '../core/errors.ts';

/** Where a setting came from: a flag, a FERRY_* variable, the data folder, or the built-in default. */
export type SettingSource = 'flag' | 'env' | 'data-dir' | 'default';

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and `localhost`. Takes a URL's `hostname`. */
export function isLoopbackHost(hostname: string): boolean {
  // WHATWG URL parsing already normalised 0x7f.1, 2130706433 and [0:0::1] to these forms.
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h === 'localhost.') return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  return h === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(h);
}

/** The URL as it may be shown: scheme, host, port and path, never user:password@. */
export function displayUrl(url: URL): string {
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.protocol}//${url.host}${path}`;
}

const URL_NAMES: Readonly<Record<SettingSource, string>> = {
  flag: '--url',
  env: 'FERRY_URL',
  'data-dir': 'the data folder (server-url)',
  default: 'the default',
};
const TOKEN_NAMES: Readonly<Record<Exclude<SettingSource, 'default'>, string>> = {
  flag: '--token',
  env: 'FERRY_TOKEN',
  'data-dir': 'the data folder (<data-dir>/token)',
};

/** Parse the server URL; only http and https, and nothing of a bad one is shown but its shape. */
export function parseServerUrl(raw: string, source: SettingSource): URL {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the server URL from ${URL_NAMES[source]} is not an http:// or https:// URL; write it like http://127.0.0.1:7070`,
    );
  }
  return url;
}

/**
 * A bearer token the CLI can send: printable ASCII without spaces (what Ferry generates, and what
 * an HTTP header can carry unchanged). Anything else is refused with a sentence that shows none of it:
 * HTTP libraries echo an invalid header value in their errors.
 */
export function checkToken(token: string, source: Exclude<SettingSource, 'default'>): void {
  if (!/^[\x21-\x7e]*$/.test(token)) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `the token from ${TOKEN_NAMES[source]} is malformed: it holds a space, a line break, a control or a non-ASCII character, which a token never does; nothing of it is shown. Copy it again, without quotes or line breaks`,
    );
  }
}

/**
 * Whether the token may go to `url`. A token read from the data folder is the embedded server's
 * admin token: it may go only to a loopback address, whatever named the URL, or any --url (a typo,
 * a pasted link) would receive it. Returns a warning to print once, or null; throws a refusal.
 */
export function tokenPolicy(url: URL, urlSource: SettingSource, tokenSource: Exclude<SettingSource, 'default'> | null): string | null {
  if (tokenSource === null) return null;
  const loopback = isLoopbackHost(url.hostname);
  if (tokenSource === 'data-dir') {
    if (loopback) return null;
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `refusing to send the admin token from the data folder to ${displayUrl(url)} (from ${URL_NAMES[urlSource]}): it goes only to a loopback address (127.0.0.1, ::1, localhost). To talk to another server, pass its token explicitly with --token or FERRY_TOKEN`,
    );
  }
  if (!loopback && url.protocol === 'http:') {
    return `warning: sending the token over plain http to ${url.host}, where anyone on the network path can read it; prefer https:// (Ferry behind a TLS proxy)`;
  }
  return null;
}

/** A token shown nowhere: every occurrence in `text` becomes `<token>`. */
export function redact(text: string, token: string | null): string {
  if (!token) return text;
  let out = text.split(token).join('<token>');
  const escaped = JSON.stringify(token).slice(1, -1);
  if (escaped !== token) out = out.split(escaped).join('<token>');
  return out;
}
