/**
 * Tracker settings: per tracker (github, gitea — also Forgejo —, gitlab) the webhook secret, the
 * API address and token, the bot user and who may do what; and how the comment outbox retries.
 * Raw options come through src/config.ts (flag > FERRY_* env > file > default); this module only
 * validates and resolves them. It reads no environment itself: config.ts hands `env` in.
 */
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import { TRACKERS, type TrackerKind } from '../core/issue-ref.ts';
import type { RoleConfig } from './commands.ts';

/** One tracker's raw settings, as written in the config file (`trackers.<kind>`), env or flags. */
export interface RawTrackerOptions {
  webhookSecret?: string;
  apiUrl?: string;
  webUrl?: string;
  token?: string;
  botUser?: string;
  filers?: string[] | string;
  operators?: string[] | string;
  admins?: string[] | string;
}

export type RawTrackers = Partial<Record<TrackerKind, RawTrackerOptions>>;

export interface RawOutboxOptions {
  retryBaseMs?: number | string;
  retryMaxMs?: number | string;
  giveUpAfterMs?: number | string;
}

export interface TrackerSettings {
  readonly kind: TrackerKind;
  /** Webhook secret (GitLab: the secret token). Default none: every delivery is refused (401). */
  readonly webhookSecret: string | null;
  /**
   * API address. GitHub: the REST root, default https://api.github.com (Enterprise:
   * https://HOST/api/v3). Gitea/Forgejo, GitLab: the instance root (no default; needed with a token).
   */
  readonly apiUrl: string | null;
  /** Web address of the instance, for links to threads; default derived from apiUrl. */
  readonly webUrl: string | null;
  /** API token of Ferry's bot user. Default none: Ferry reads deliveries but writes no comments. */
  readonly token: string | null;
  /** Ferry's user on the tracker; its comments are ignored. Default none (the hidden marker still is). */
  readonly botUser: string | null;
  /** Who may file, operate, administer. Each list defaults to empty (fail closed). */
  readonly roles: Required<{ readonly [K in keyof RoleConfig]: readonly string[] }>;
}

export interface OutboxSettings {
  /** First retry delay after a retryable failure; doubles per attempt. Default 2000 ms. */
  readonly retryBaseMs: number;
  /** Longest delay between retries. Default 300000 ms (5 min). */
  readonly retryMaxMs: number;
  /** A comment still not accepted after this long is given up (recorded as failed). Default 24 h. */
  readonly giveUpAfterMs: number;
}

export interface TrackersConfig {
  readonly trackers: Readonly<Record<TrackerKind, TrackerSettings>>;
  readonly outbox: OutboxSettings;
}

const names = z.union([z.array(z.string().min(1).max(200)).max(1000), z.string().max(20_000)]);

const rawTrackerSchema = z.strictObject({
  webhookSecret: z.string().optional(),
  apiUrl: z.string().optional(),
  webUrl: z.string().optional(),
  token: z.string().optional(),
  botUser: z.string().optional(),
  filers: names.optional(),
  operators: names.optional(),
  admins: names.optional(),
});

export const rawTrackersSchema = z.strictObject({
  github: rawTrackerSchema.optional(),
  gitea: rawTrackerSchema.optional(),
  gitlab: rawTrackerSchema.optional(),
});

export const rawOutboxSchema = z.strictObject({
  retryBaseMs: z.union([z.number(), z.string()]).optional(),
  retryMaxMs: z.union([z.number(), z.string()]).optional(),
  giveUpAfterMs: z.union([z.number(), z.string()]).optional(),
});

const ENV_FIELDS: ReadonlyArray<readonly [keyof RawTrackerOptions, string]> = [
  ['webhookSecret', 'WEBHOOK_SECRET'],
  ['apiUrl', 'API_URL'],
  ['webUrl', 'WEB_URL'],
  ['token', 'TOKEN'],
  ['botUser', 'BOT_USER'],
  ['filers', 'FILERS'],
  ['operators', 'OPERATORS'],
  ['admins', 'ADMINS'],
];

/** `FERRY_<TRACKER>_<FIELD>`, e.g. FERRY_GITHUB_WEBHOOK_SECRET, FERRY_GITLAB_OPERATORS (comma-separated). */
export function trackerEnvOptions(env: NodeJS.ProcessEnv): { trackers?: RawTrackers; outbox?: RawOutboxOptions } {
  const trackers: RawTrackers = {};
  for (const kind of TRACKERS) {
    const raw: RawTrackerOptions = {};
    for (const [field, suffix] of ENV_FIELDS) {
      const value = env[`FERRY_${kind.toUpperCase()}_${suffix}`];
      if (value !== undefined && value !== '') (raw as Record<string, string>)[field] = value;
    }
    if (Object.keys(raw).length > 0) trackers[kind] = raw;
  }
  const outbox: RawOutboxOptions = {};
  if (env.FERRY_OUTBOX_RETRY_BASE_MS) outbox.retryBaseMs = env.FERRY_OUTBOX_RETRY_BASE_MS;
  if (env.FERRY_OUTBOX_RETRY_MAX_MS) outbox.retryMaxMs = env.FERRY_OUTBOX_RETRY_MAX_MS;
  if (env.FERRY_OUTBOX_GIVE_UP_AFTER_MS) outbox.giveUpAfterMs = env.FERRY_OUTBOX_GIVE_UP_AFTER_MS;
  return {
    ...(Object.keys(trackers).length > 0 ? { trackers } : {}),
    ...(Object.keys(outbox).length > 0 ? { outbox } : {}),
  };
}

/** Resolve the layers (highest precedence first), field by field. */
export function compileTrackers(layers: ReadonlyArray<{ trackers?: RawTrackers | undefined; outbox?: RawOutboxOptions | undefined }>): TrackersConfig {
  const trackers = {} as Record<TrackerKind, TrackerSettings>;
  for (const kind of TRACKERS) {
    const pick = <K extends keyof RawTrackerOptions>(key: K): RawTrackerOptions[K] => {
      for (const layer of layers) {
        const value = layer.trackers?.[kind]?.[key];
        if (value !== undefined) return value;
      }
      return undefined;
    };
    const token = blank(pick('token'));
    const apiUrl = url(blank(pick('apiUrl')) ?? (kind === 'github' ? 'https://api.github.com' : null), `trackers.${kind}.apiUrl`);
    if (token !== null && apiUrl === null) {
      throw new FerryError(
        'FERRY_INVALID_REQUEST',
        `trackers.${kind}.token is set but trackers.${kind}.apiUrl is not; set it to the ${kind} instance's address (FERRY_${kind.toUpperCase()}_API_URL)`,
      );
    }
    trackers[kind] = Object.freeze({
      kind,
      webhookSecret: blank(pick('webhookSecret')),
      apiUrl,
      webUrl: url(blank(pick('webUrl')), `trackers.${kind}.webUrl`),
      token,
      botUser: blank(pick('botUser')),
      roles: Object.freeze({ filers: list(pick('filers')), operators: list(pick('operators')), admins: list(pick('admins')) }),
    });
  }
  const pickOutbox = (key: keyof RawOutboxOptions): number | string | undefined => {
    for (const layer of layers) if (layer.outbox?.[key] !== undefined) return layer.outbox[key];
    return undefined;
  };
  const retryBaseMs = ms(pickOutbox('retryBaseMs') ?? 2000, 'outbox.retryBaseMs');
  const retryMaxMs = ms(pickOutbox('retryMaxMs') ?? 300_000, 'outbox.retryMaxMs');
  const giveUpAfterMs = ms(pickOutbox('giveUpAfterMs') ?? 86_400_000, 'outbox.giveUpAfterMs');
  return Object.freeze({
    trackers: Object.freeze(trackers),
    outbox: Object.freeze({ retryBaseMs, retryMaxMs: Math.max(retryMaxMs, retryBaseMs), giveUpAfterMs }),
  });
}

/** The web address of an issue, for links between threads. */
export function threadWebUrl(settings: TrackerSettings, repo: string, number: number): string | null {
  let root = settings.webUrl;
  if (root === null && settings.apiUrl !== null) {
    root =
      settings.kind === 'github'
        ? settings.apiUrl.replace(/^https:\/\/api\.github\.com\/?$/, 'https://github.com').replace(/\/api\/v3\/?$/, '')
        : settings.apiUrl;
  }
  if (root === null) return null;
  const base = root.replace(/\/+$/, '');
  return settings.kind === 'gitlab' ? `${base}/${repo}/-/issues/${number}` : `${base}/${repo}/issues/${number}`;
}

function blank(value: string | undefined): string | null {
  return value === undefined || value.trim() === '' ? null : value.trim();
}

function list(value: readonly string[] | string | undefined): readonly string[] {
  const items = typeof value === 'string' ? value.split(',') : (value ?? []);
  return Object.freeze(items.map((item) => item.trim()).filter((item) => item.length > 0));
}

function url(value: string | null, setting: string): string | null {
  if (value === null) return null;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new FerryError('FERRY_INVALID_REQUEST', `${setting} ${JSON.stringify(value.slice(0, 200))} is not an address; write it as https://host[/path]`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new FerryError('FERRY_INVALID_REQUEST', `${setting} must be an http(s) address`);
  return value.replace(/\/+$/, '');
}

function ms(value: number | string, setting: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new FerryError('FERRY_INVALID_REQUEST', `${setting} must be a whole number of milliseconds, at least 1`);
  return n;
}
