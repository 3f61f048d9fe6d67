/**
 * Webhook authentication for the three tracker families, on the raw request body.
 *
 * - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (checked by @octokit/webhooks-methods).
 * - Gitea / Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC-SHA256 of the body>`.
 * - GitLab: `X-Gitlab-Token: <the shared secret>`, compared in constant time.
 *
 * Fail closed: with no secret configured every delivery is refused, so a forgotten setting never
 * turns into an open endpoint. Authentication is decided before any header is validated, so an
 * unauthenticated caller learns nothing about what a well-formed delivery looks like.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { verify as verifyGitHubSignature } from '@octokit/webhooks-methods';
import type { TrackerKind } from '../core/issue-ref.ts';

/** Request headers as Node or Fastify hand them over; names are matched case-insensitively. */
export type DeliveryHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export type VerifyFailureReason = 'no-secret' | 'missing-signature' | 'bad-signature' | 'bad-body' | 'missing-delivery-id' | 'missing-event';

export type VerifyResult =
  | { readonly ok: true; readonly tracker: TrackerKind; readonly deliveryId: string; readonly event: string }
  | {
      readonly ok: false;
      readonly status: 400 | 401;
      readonly code: 'FERRY_BAD_REQUEST' | 'FERRY_UNAUTHENTICATED';
      /** Finer than `code`, for logs and metrics; not shown to the caller beyond the message. */
      readonly reason: VerifyFailureReason;
      readonly message: string;
    };

interface HeaderNames {
  readonly delivery: readonly string[];
  readonly event: readonly string[];
}

const HEADERS: Readonly<Record<TrackerKind, HeaderNames>> = {
  github: { delivery: ['x-github-delivery'], event: ['x-github-event'] },
  gitea: { delivery: ['x-forgejo-delivery', 'x-gitea-delivery'], event: ['x-forgejo-event', 'x-gitea-event'] },
  gitlab: { delivery: ['x-gitlab-event-uuid', 'idempotency-key'], event: ['x-gitlab-event'] },
};

const SECRET_SETTING: Readonly<Record<TrackerKind, string>> = {
  github: 'the GitHub webhook secret',
  gitea: 'the Gitea/Forgejo webhook secret',
  gitlab: 'the GitLab webhook secret token',
};

/** Delivery ids and event names are short printable tokens; anything else is refused. */
const TOKEN = /^[\x21-\x7e]{1,200}$/;
const EVENT = /^[A-Za-z0-9_. -]{1,100}$/;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

/**
 * Authenticate one webhook delivery and read its delivery id and event name.
 * Async because @octokit/webhooks-methods' `verify` is.
 */
export async function verifyDelivery(tracker: TrackerKind, headers: DeliveryHeaders, rawBody: Buffer, secret: string | undefined): Promise<VerifyResult> {
  if (secret === undefined || secret.length === 0) {
    return unauthenticated(
      'no-secret',
      `webhook deliveries from ${tracker} are refused because no secret is configured; set ${SECRET_SETTING[tracker]} in Ferry's configuration and the same value in the ${tracker} webhook settings`,
    );
  }
  const lower = lowerCaseHeaders(headers);

  const auth = await authenticate(tracker, lower, rawBody, secret);
  if (auth !== null) return auth;

  const names = HEADERS[tracker];
  const deliveryId = firstHeader(lower, names.delivery);
  if (deliveryId === undefined || !TOKEN.test(deliveryId)) {
    return badRequest('missing-delivery-id', `the delivery has no usable ${names.delivery.join(' or ')} header; Ferry needs it to process each delivery once`);
  }
  const event = firstHeader(lower, names.event);
  if (event === undefined || !EVENT.test(event)) {
    return badRequest('missing-event', `the delivery has no usable ${names.event.join(' or ')} header`);
  }
  return { ok: true, tracker, deliveryId, event };
}

async function authenticate(
  tracker: TrackerKind,
  headers: ReadonlyMap<string, string | readonly string[]>,
  rawBody: Buffer,
  secret: string,
): Promise<VerifyResult | null> {
  switch (tracker) {
    case 'github': {
      const signature = single(headers, 'x-hub-signature-256');
      if (signature === null) return missingSignature('X-Hub-Signature-256');
      if (signature === 'duplicate') return badSignature('X-Hub-Signature-256 is sent more than once');
      const text = utf8(rawBody);
      // Invalid UTF-8 would be replaced by U+FFFD before hashing, so the bytes checked would not be
      // the bytes received; refuse it outright. An empty body cannot be signed by GitHub either.
      if (text === null || text.length === 0) {
        return unauthenticated('bad-body', 'the delivery cannot be authenticated: its body is empty or not UTF-8; GitHub signs UTF-8 JSON bodies');
      }
      return (await verifyGitHubSignature(secret, text, signature)) ? null : badSignature('X-Hub-Signature-256 does not match the body');
    }
    case 'gitea': {
      const present = ['x-forgejo-signature', 'x-gitea-signature'].filter((name) => headers.has(name));
      if (present.length === 0) return missingSignature('X-Gitea-Signature or X-Forgejo-Signature');
      const expected = Buffer.from(createHmac('sha256', secret).update(rawBody).digest('hex'), 'latin1');
      // Forgejo sends both headers; every signature that is present must match.
      for (const name of present) {
        const signature = single(headers, name);
        if (signature === null || signature === 'duplicate') return badSignature(`${name} is empty or sent more than once`);
        if (!HEX_SHA256.test(signature)) return badSignature(`${name} is not a hex HMAC-SHA256`);
        if (!timingSafeEqual(Buffer.from(signature.toLowerCase(), 'latin1'), expected)) return badSignature(`${name} does not match the body`);
      }
      return null;
    }
    case 'gitlab': {
      const token = single(headers, 'x-gitlab-token');
      if (token === null) return missingSignature('X-Gitlab-Token');
      if (token === 'duplicate') return badSignature('X-Gitlab-Token is sent more than once');
      // Hash both sides first: equal-length digests make the comparison constant-time without
      // leaking the secret's length through an early length check.
      const given = createHash('sha256').update(token, 'utf8').digest();
      const wanted = createHash('sha256').update(secret, 'utf8').digest();
      return timingSafeEqual(given, wanted) ? null : badSignature('X-Gitlab-Token does not match the configured secret token');
    }
  }
}

function lowerCaseHeaders(headers: DeliveryHeaders): Map<string, string | readonly string[]> {
  const out = new Map<string, string | readonly string[]>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    const previous = out.get(key);
    out.set(key, previous === undefined ? value : [...[previous].flat(), ...[value].flat()]);
  }
  return out;
}

/** One non-empty header value; `'duplicate'` when it was sent more than once. */
function single(headers: ReadonlyMap<string, string | readonly string[]>, name: string): string | 'duplicate' | null {
  const value = headers.get(name);
  if (value === undefined) return null;
  if (typeof value !== 'string') {
    if (value.length > 1) return 'duplicate';
    const [only] = value;
    return only === undefined || only.length === 0 ? null : only;
  }
  return value.length === 0 ? null : value;
}

function firstHeader(headers: ReadonlyMap<string, string | readonly string[]>, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = single(headers, name);
    if (value !== null && value !== 'duplicate') return value.trim();
  }
  return undefined;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function utf8(body: Buffer): string | null {
  try {
    return decoder.decode(body);
  } catch {
    return null;
  }
}

function unauthenticated(reason: VerifyFailureReason, message: string): VerifyResult {
  return { ok: false, status: 401, code: 'FERRY_UNAUTHENTICATED', reason, message };
}

function missingSignature(header: string): VerifyResult {
  return unauthenticated(
    'missing-signature',
    `the delivery is not signed (no ${header} header); configure the webhook secret in the tracker's webhook settings`,
  );
}

function badSignature(detail: string): VerifyResult {
  return unauthenticated(
    'bad-signature',
    `the delivery's signature is not valid (${detail}); check that the tracker's webhook secret matches Ferry's configuration`,
  );
}

function badRequest(reason: VerifyFailureReason, message: string): VerifyResult {
  return { ok: false, status: 400, code: 'FERRY_BAD_REQUEST', reason, message };
}
