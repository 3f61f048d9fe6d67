/**
 * Configuration, compiled once. Raw options come from flags, `FERRY_*` environment variables and a
 * YAML file (`--config`, FERRY_CONFIG, or <data-dir>/ferry.yaml when present), in that order of
 * precedence, over the defaults documented on `FerryConfig`. Only this module reads process.env.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FerryError } from './core/errors.ts';
import { parseIssueRef, type IssueDefaults } from './core/issue-ref.ts';
import { parseDuration } from './core/duration.ts';
import { parseQuantity } from './core/quantity.ts';
import type { Resources } from './core/types.ts';
import { DEFAULT_SOCKET_PATH } from './substrates/container/container-options.ts';
import { DEFAULT_SWARM_SOCKET_PATH } from './substrates/swarm/swarm-options.ts';
import {
  compileTrackers,
  rawOutboxSchema,
  rawTrackersSchema,
  trackerEnvOptions,
  type RawOutboxOptions,
  type RawTrackers,
  type TrackersConfig,
} from './tracker/tracker-config.ts';

export interface FerryConfig {
  /** Address the HTTP API listens on. Default 127.0.0.1. */
  readonly host: string;
  /** Default 7070. */
  readonly port: number;
  /** Where Ferry keeps its SQLite store, token, logs, scratch, snapshots. Default ./.ferry */
  readonly dataDir: string;
  /** PostgreSQL connection string for the multi-node store; default none (SQLite in dataDir). */
  readonly databaseUrl: string | null;
  /**
   * This node's name in the cluster: its tenants, jobs and artifacts are recorded under it. Null when
   * not given: the host name, except that a SQLite store keeps the name it was first started with.
   */
  readonly node: string | null;
  /** A node that has not renewed its lease for this long (ms) is lost: the others hold its running migrations. Default 60 s. */
  readonly nodeLostAfterMs: number;
  /** The address the other nodes reach this node's API at (forwarded logs and cancels). Default: the listen address, with the host name for a wildcard one. */
  readonly advertiseUrl: string | null;
  /** Where jobs run. Default `process`. */
  readonly substrate: 'process' | 'container' | 'swarm';
  /** What this node offers the scheduler and the admission check; default: the substrate's. */
  readonly capacity: Resources | null;
  /** `auto` (default) uses cgroups where writable; `off` never (limits then not enforced). */
  readonly cgroups: 'auto' | 'off';
  /**
   * Job confinement (process substrate): `auto` (default) confines every job where the host allows it
   * (Ferry runs as root) and otherwise runs it unconfined, said at start and recorded as
   * `isolated: false`; `required` refuses to start where jobs cannot be confined; `off` never confines.
   */
  readonly isolation: 'auto' | 'required' | 'off';
  /** The uids and gids Ferry gives tenants that name no `runAs`, inclusive. Default 200000-299999. */
  readonly uidRange: { readonly first: number; readonly last: number };
  /** Most bytes of output one step keeps in its attempt log; past it the head and the tail are kept. Default 64 MiB. */
  readonly logLimit: number;
  /** Most HTTP connections open at once; past it new ones are closed at once. Default 1000 (less when the descriptor limit is low). */
  readonly maxConnections: number;
  /** Most log followers (`?follow=true`) at once, in all and per token. Default 200 and 20. */
  readonly maxFollowers: { readonly total: number; readonly perToken: number };
  /** YAML file of API tokens with roles; default none (only the admin token in dataDir/token). */
  readonly tokensFile: string | null;
  /** Tracker and repo for bare `#742` issue refs, e.g. github:acme/platform; default none. */
  readonly issueDefaults: IssueDefaults | null;
  /** Largest request body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit: number;
  /**
   * Docker Engine API address for the container substrate, as given: a socket path or `unix://<path>`
   * (the substrate refuses any other, e.g. `tcp://`). FERRY_DOCKER_SOCKET, else DOCKER_HOST, stand for
   * the environment layer. Default /run/podman/podman.sock (DEFAULT_SOCKET_PATH).
   */
  readonly dockerSocket: string;
  /** Image for container steps whose request names none. Default none. */
  readonly defaultImage: string | null;
  /** Swarm substrate: the image of the node agents (sh and the docker CLI); null: `docker:27-cli`. */
  readonly swarmHelperImage: string | null;
  /** Issue trackers (webhooks in, comments out) and the comment outbox; see docs/issue-threads.md. */
  readonly tracker: TrackersConfig;
}

export interface RawOptions {
  host?: string;
  port?: number | string;
  dataDir?: string;
  databaseUrl?: string;
  node?: string;
  nodeLostAfter?: string;
  advertiseUrl?: string;
  substrate?: string;
  capacity?: { cpu?: string | number; memory?: string | number };
  cgroups?: string;
  isolation?: string;
  uidRange?: string;
  logLimit?: number | string;
  maxConnections?: number | string;
  maxFollowers?: number | string;
  maxFollowersPerToken?: number | string;
  tokensFile?: string;
  defaultIssueRepo?: string;
  bodyLimit?: number | string;
  dockerSocket?: string;
  defaultImage?: string;
  swarmHelperImage?: string;
  /** Per tracker: webhookSecret, apiUrl, webUrl, token, botUser, filers, operators, admins. */
  trackers?: RawTrackers;
  outbox?: RawOutboxOptions;
}

const fileSchema = z.strictObject({
  host: z.string().optional(),
  port: z.union([z.number(), z.string()]).optional(),
  databaseUrl: z.string().optional(),
  node: z.string().optional(),
  nodeLostAfter: z.string().optional(),
  advertiseUrl: z.string().optional(),
  substrate: z.string().optional(),
  capacity: z.strictObject({ cpu: z.union([z.string(), z.number()]).optional(), memory: z.union([z.string(), z.number()]).optional() }).optional(),
  cgroups: z.string().optional(),
  isolation: z.string().optional(),
  uidRange: z.string().optional(),
  logLimit: z.union([z.number(), z.string()]).optional(),
  maxConnections: z.union([z.number(), z.string()]).optional(),
  maxFollowers: z.union([z.number(), z.string()]).optional(),
  maxFollowersPerToken: z.union([z.number(), z.string()]).optional(),
  tokensFile: z.string().optional(),
  defaultIssueRepo: z.string().optional(),
  bodyLimit: z.union([z.number(), z.string()]).optional(),
  dockerSocket: z.string().optional(),
  defaultImage: z.string().optional(),
  swarmHelperImage: z.string().max(300).optional(),
  trackers: rawTrackersSchema.optional(),
  outbox: rawOutboxSchema.optional(),
});

/** Options from `FERRY_*` variables. */
function envOptions(env: NodeJS.ProcessEnv = process.env): RawOptions {
  const o: RawOptions = {};
  if (env.FERRY_HOST) o.host = env.FERRY_HOST;
  if (env.FERRY_PORT) o.port = env.FERRY_PORT;
  if (env.FERRY_DATA_DIR) o.dataDir = env.FERRY_DATA_DIR;
  if (env.FERRY_DATABASE_URL) o.databaseUrl = env.FERRY_DATABASE_URL;
  if (env.FERRY_NODE) o.node = env.FERRY_NODE;
  if (env.FERRY_NODE_LOST_AFTER) o.nodeLostAfter = env.FERRY_NODE_LOST_AFTER;
  if (env.FERRY_ADVERTISE_URL) o.advertiseUrl = env.FERRY_ADVERTISE_URL;
  if (env.FERRY_SUBSTRATE) o.substrate = env.FERRY_SUBSTRATE;
  if (env.FERRY_CAPACITY_CPU || env.FERRY_CAPACITY_MEMORY) {
    o.capacity = {
      ...(env.FERRY_CAPACITY_CPU ? { cpu: env.FERRY_CAPACITY_CPU } : {}),
      ...(env.FERRY_CAPACITY_MEMORY ? { memory: env.FERRY_CAPACITY_MEMORY } : {}),
    };
  }
  if (env.FERRY_CGROUPS) o.cgroups = env.FERRY_CGROUPS;
  if (env.FERRY_ISOLATION) o.isolation = env.FERRY_ISOLATION;
  if (env.FERRY_UID_RANGE) o.uidRange = env.FERRY_UID_RANGE;
  if (env.FERRY_LOG_LIMIT) o.logLimit = env.FERRY_LOG_LIMIT;
  if (env.FERRY_MAX_CONNECTIONS) o.maxConnections = env.FERRY_MAX_CONNECTIONS;
  if (env.FERRY_MAX_FOLLOWERS) o.maxFollowers = env.FERRY_MAX_FOLLOWERS;
  if (env.FERRY_MAX_FOLLOWERS_PER_TOKEN) o.maxFollowersPerToken = env.FERRY_MAX_FOLLOWERS_PER_TOKEN;
  if (env.FERRY_TOKENS_FILE) o.tokensFile = env.FERRY_TOKENS_FILE;
  if (env.FERRY_DEFAULT_ISSUE_REPO) o.defaultIssueRepo = env.FERRY_DEFAULT_ISSUE_REPO;
  if (env.FERRY_BODY_LIMIT) o.bodyLimit = env.FERRY_BODY_LIMIT;
  const docker = env.FERRY_DOCKER_SOCKET ?? env.DOCKER_HOST;
  if (docker) o.dockerSocket = docker;
  if (env.FERRY_DEFAULT_IMAGE) o.defaultImage = env.FERRY_DEFAULT_IMAGE;
  if (env.FERRY_SWARM_HELPER_IMAGE) o.swarmHelperImage = env.FERRY_SWARM_HELPER_IMAGE;
  return { ...o, ...trackerEnvOptions(env) };
}

/** The config file named by flag or env, or <dataDir>/ferry.yaml if it exists. */
function fileOptions(path: string | undefined, dataDir: string): RawOptions {
  const file = path ?? resolve(dataDir, 'ferry.yaml');
  if (!existsSync(file)) {
    if (path) throw new FerryError('FERRY_INVALID_REQUEST', `config file ${path} does not exist`);
    return {};
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    throw new FerryError('FERRY_INVALID_REQUEST', `config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `config file ${file}: ${result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`,
    );
  }
  return result.data;
}

/** Merge flag > env > file > default into a frozen config. */
export function compileConfig(layers: { flags?: RawOptions; env?: NodeJS.ProcessEnv; configPath?: string }): FerryConfig {
  const flags = layers.flags ?? {};
  const env = envOptions(layers.env ?? process.env);
  const configPath = layers.configPath ?? (layers.env ?? process.env).FERRY_CONFIG;
  const dataDir = resolve(flags.dataDir ?? env.dataDir ?? './.ferry');
  const file = fileOptions(configPath, dataDir);
  const pick = <K extends keyof RawOptions>(key: K): RawOptions[K] => flags[key] ?? env[key] ?? file[key];

  const port = Number(pick('port') ?? 7070);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new FerryError('FERRY_INVALID_REQUEST', `port ${pick('port')} is not a port number (0-65535)`);
  const substrate = pick('substrate') ?? 'process';
  if (substrate !== 'process' && substrate !== 'container' && substrate !== 'swarm') {
    throw new FerryError('FERRY_INVALID_REQUEST', `substrate ${substrate} is not supported here; use process, container or swarm`);
  }
  const cgroups = pick('cgroups') ?? 'auto';
  if (cgroups !== 'auto' && cgroups !== 'off') throw new FerryError('FERRY_INVALID_REQUEST', `cgroups must be auto or off, not ${cgroups}`);
  const isolation = pick('isolation') ?? 'auto';
  if (isolation !== 'auto' && isolation !== 'required' && isolation !== 'off') {
    throw new FerryError('FERRY_INVALID_REQUEST', `isolation must be auto, required or off, not ${isolation}`);
  }
  const uidRange = parseUidRange(pick('uidRange') ?? '200000-299999');
  const logLimit = parseQuantity('memory', pick('logLimit') ?? '64Mi');
  if (logLimit < 64 * 1024) throw new FerryError('FERRY_INVALID_REQUEST', `logLimit must be at least 64Ki, not ${pick('logLimit')}`);
  const maxConnections = wholeNumber('maxConnections', pick('maxConnections') ?? 1000, 16);
  const maxFollowers = {
    total: wholeNumber('maxFollowers', pick('maxFollowers') ?? 200, 1),
    perToken: wholeNumber('maxFollowersPerToken', pick('maxFollowersPerToken') ?? 20, 1),
  };
  const rawCapacity = { ...file.capacity, ...env.capacity, ...flags.capacity };
  let capacity: Resources | null = null;
  if (rawCapacity.cpu !== undefined || rawCapacity.memory !== undefined) {
    capacity = {
      ...(rawCapacity.cpu !== undefined ? { cpu: parseQuantity('cpu', rawCapacity.cpu) } : {}),
      ...(rawCapacity.memory !== undefined ? { memory: parseQuantity('memory', rawCapacity.memory) } : {}),
    };
  }
  const repo = pick('defaultIssueRepo');
  let issueDefaults: IssueDefaults | null = null;
  if (repo) {
    const ref = parseIssueRef(`${repo}#1`);
    issueDefaults = { tracker: ref.tracker, repo: ref.repo };
  }
  const bodyLimit = Number(pick('bodyLimit') ?? 1024 * 1024);
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024)
    throw new FerryError('FERRY_INVALID_REQUEST', `bodyLimit must be a whole number of bytes, at least 1024`);
  const node = pick('node') ?? null;
  if (node !== null && !/^[a-z0-9][a-z0-9.-]{0,62}$/i.test(node)) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `node name ${JSON.stringify(node)} is not a name: letters, digits, '.' and '-', up to 63, starting with a letter or digit`,
    );
  }
  const nodeLostAfterMs = parseDuration('nodeLostAfter', pick('nodeLostAfter') ?? '60s');
  if (nodeLostAfterMs < 2000) throw new FerryError('FERRY_INVALID_REQUEST', `nodeLostAfter must be at least 2s, not ${pick('nodeLostAfter')}`);
  const advertiseUrl = pick('advertiseUrl') ?? null;
  if (advertiseUrl !== null && !/^https?:\/\/[^/\s]+\/?$/.test(advertiseUrl)) {
    throw new FerryError('FERRY_INVALID_REQUEST', `advertiseUrl ${JSON.stringify(advertiseUrl)} is not an address like http://host-b.internal:7070`);
  }
  // Kept as given: the container substrate reads the address, and refuses one that is not local.
  // The swarm substrate talks to a swarm manager's engine, by default the one scripts/setup-swarm.sh starts.
  const dockerSocket = pick('dockerSocket') ?? (substrate === 'swarm' ? DEFAULT_SWARM_SOCKET_PATH : DEFAULT_SOCKET_PATH);
  return Object.freeze({
    host: pick('host') ?? '127.0.0.1',
    port,
    dataDir,
    databaseUrl: pick('databaseUrl') ?? null,
    node,
    nodeLostAfterMs,
    advertiseUrl: advertiseUrl?.replace(/\/$/, '') ?? null,
    substrate,
    capacity,
    cgroups,
    isolation,
    uidRange,
    logLimit,
    maxConnections,
    maxFollowers,
    tokensFile: pick('tokensFile') ?? null,
    issueDefaults,
    bodyLimit,
    dockerSocket,
    defaultImage: pick('defaultImage') ?? null,
    swarmHelperImage: pick('swarmHelperImage') ?? null,
    tracker: compileTrackers([flags, env, file]),
  });
}

/** `FIRST-LAST`, both uids above 0 and below 2^31. */
function parseUidRange(text: string): { first: number; last: number } {
  const match = /^(\d{1,10})-(\d{1,10})$/.exec(text.trim());
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1 || last < first || last >= 2 ** 31) {
    throw new FerryError('FERRY_INVALID_REQUEST', `uidRange ${JSON.stringify(text)} is not a range of uids like 200000-299999 (above 0, first <= last)`);
  }
  return { first, last };
}

function wholeNumber(name: string, raw: number | string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new FerryError('FERRY_INVALID_REQUEST', `${name} must be a whole number, at least ${min}, not ${raw}`);
  return n;
}

/** What the CLI needs to reach a server, and where each part came from (the CLI decides where a token may go). */
export interface ClientSettings {
  readonly url: string;
  readonly urlSource: 'flag' | 'env' | 'data-dir' | 'default';
  readonly token: string | null;
  /** `data-dir`: the embedded server's admin token, which the CLI sends only to a loopback address. */
  readonly tokenSource: 'flag' | 'env' | 'data-dir' | null;
  /** The raw `--timeout` or FERRY_TIMEOUT (a duration like 30s), or null for the CLI's default. */
  readonly timeout: string | null;
}

/** What the CLI needs to reach a server: flag > FERRY_URL/FERRY_TOKEN/FERRY_TIMEOUT > the embedded data folder > default. */
export function clientSettings(
  flags: { url?: string; token?: string; dataDir?: string; timeout?: string },
  env: NodeJS.ProcessEnv = process.env,
): ClientSettings {
  const dataDir = resolve(flags.dataDir ?? env.FERRY_DATA_DIR ?? './.ferry');
  const fromFolder = flags.url === undefined && env.FERRY_URL === undefined ? readServerUrl(dataDir) : null;
  const [url, urlSource] =
    flags.url !== undefined
      ? [flags.url, 'flag' as const]
      : env.FERRY_URL !== undefined
        ? [env.FERRY_URL, 'env' as const]
        : fromFolder !== null
          ? [fromFolder, 'data-dir' as const]
          : ['http://127.0.0.1:7070', 'default' as const];
  let token: string | null = null;
  let tokenSource: ClientSettings['tokenSource'] = null;
  if (flags.token !== undefined) [token, tokenSource] = [flags.token, 'flag'];
  else if (env.FERRY_TOKEN !== undefined) [token, tokenSource] = [env.FERRY_TOKEN, 'env'];
  else {
    try {
      // Only the ends are trimmed: a line break inside is a malformed token, refused by the CLI.
      token = readFileSync(resolve(dataDir, 'token'), 'utf8').trim();
      tokenSource = 'data-dir';
    } catch {
      token = null;
    }
  }
  return { url: url.replace(/\/+$/, ''), urlSource, token, tokenSource, timeout: flags.timeout ?? env.FERRY_TIMEOUT ?? null };
}

function readServerUrl(dataDir: string): string | null {
  try {
    return readFileSync(resolve(dataDir, 'server-url'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}
