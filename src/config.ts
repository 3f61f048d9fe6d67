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
import { parseQuantity } from './core/quantity.ts';
import type { Resources } from './core/types.ts';
import { compileTrackers, rawOutboxSchema, rawTrackersSchema, trackerEnvOptions, type RawOutboxOptions, type RawTrackers, type TrackersConfig } from './tracker/tracker-config.ts';

export interface FerryConfig {
  /** Address the HTTP API listens on. Default 127.0.0.1. */
  readonly host: string;
  /** Default 7070. */
  readonly port: number;
  /** Where Ferry keeps its SQLite store, token, logs, scratch, snapshots. Default ./.ferry */
  readonly dataDir: string;
  /** PostgreSQL connection string for the multi-node store; default none (SQLite in dataDir). */
  readonly databaseUrl: string | null;
  /** Where jobs run. Default `process`. */
  readonly substrate: 'process' | 'container';
  /** What this node offers the scheduler and the admission check; default: the substrate's. */
  readonly capacity: Resources | null;
  /** `auto` (default) uses cgroups where writable; `off` never (limits then not enforced). */
  readonly cgroups: 'auto' | 'off';
  /** YAML file of API tokens with roles; default none (only the admin token in dataDir/token). */
  readonly tokensFile: string | null;
  /** Tracker and repo for bare `#742` issue refs, e.g. github:acme/platform; default none. */
  readonly issueDefaults: IssueDefaults | null;
  /** Largest request body accepted, in bytes. Default 1 MiB. */
  readonly bodyLimit: number;
  /** Docker Engine API socket for the container substrate. Default DOCKER_HOST or /run/podman/podman.sock. */
  readonly dockerSocket: string;
  /** Image for container steps whose request names none. Default none. */
  readonly defaultImage: string | null;
  /** Issue trackers (webhooks in, comments out) and the comment outbox; see docs/issue-threads.md. */
  readonly tracker: TrackersConfig;
}

export interface RawOptions {
  host?: string;
  port?: number | string;
  dataDir?: string;
  databaseUrl?: string;
  substrate?: string;
  capacity?: { cpu?: string | number; memory?: string | number };
  cgroups?: string;
  tokensFile?: string;
  defaultIssueRepo?: string;
  bodyLimit?: number | string;
  dockerSocket?: string;
  defaultImage?: string;
  /** Per tracker: webhookSecret, apiUrl, webUrl, token, botUser, filers, operators, admins. */
  trackers?: RawTrackers;
  outbox?: RawOutboxOptions;
}

const fileSchema = z.strictObject({
  host: z.string().optional(),
  port: z.union([z.number(), z.string()]).optional(),
  databaseUrl: z.string().optional(),
  substrate: z.string().optional(),
  capacity: z.strictObject({ cpu: z.union([z.string(), z.number()]).optional(), memory: z.union([z.string(), z.number()]).optional() }).optional(),
  cgroups: z.string().optional(),
  tokensFile: z.string().optional(),
  defaultIssueRepo: z.string().optional(),
  bodyLimit: z.union([z.number(), z.string()]).optional(),
  dockerSocket: z.string().optional(),
  defaultImage: z.string().optional(),
  trackers: rawTrackersSchema.optional(),
  outbox: rawOutboxSchema.optional(),
});

/** Options from `FERRY_*` variables. */
export function envOptions(env: NodeJS.ProcessEnv = process.env): RawOptions {
  const o: RawOptions = {};
  if (env.FERRY_HOST) o.host = env.FERRY_HOST;
  if (env.FERRY_PORT) o.port = env.FERRY_PORT;
  if (env.FERRY_DATA_DIR) o.dataDir = env.FERRY_DATA_DIR;
  if (env.FERRY_DATABASE_URL) o.databaseUrl = env.FERRY_DATABASE_URL;
  if (env.FERRY_SUBSTRATE) o.substrate = env.FERRY_SUBSTRATE;
  if (env.FERRY_CAPACITY_CPU || env.FERRY_CAPACITY_MEMORY) {
    o.capacity = {
      ...(env.FERRY_CAPACITY_CPU ? { cpu: env.FERRY_CAPACITY_CPU } : {}),
      ...(env.FERRY_CAPACITY_MEMORY ? { memory: env.FERRY_CAPACITY_MEMORY } : {}),
    };
  }
  if (env.FERRY_CGROUPS) o.cgroups = env.FERRY_CGROUPS;
  if (env.FERRY_TOKENS_FILE) o.tokensFile = env.FERRY_TOKENS_FILE;
  if (env.FERRY_DEFAULT_ISSUE_REPO) o.defaultIssueRepo = env.FERRY_DEFAULT_ISSUE_REPO;
  if (env.FERRY_BODY_LIMIT) o.bodyLimit = env.FERRY_BODY_LIMIT;
  const docker = env.FERRY_DOCKER_SOCKET ?? env.DOCKER_HOST;
  if (docker) o.dockerSocket = docker;
  if (env.FERRY_DEFAULT_IMAGE) o.defaultImage = env.FERRY_DEFAULT_IMAGE;
  return { ...o, ...trackerEnvOptions(env) };
}

/** The config file named by flag or env, or <dataDir>/ferry.yaml if it exists. */
export function fileOptions(path: string | undefined, dataDir: string): RawOptions {
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
    throw new FerryError('FERRY_INVALID_REQUEST', `config file ${file}: ${result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
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
  if (substrate !== 'process' && substrate !== 'container') {
    throw new FerryError('FERRY_INVALID_REQUEST', `substrate ${substrate} is not supported here; use process or container`);
  }
  const cgroups = pick('cgroups') ?? 'auto';
  if (cgroups !== 'auto' && cgroups !== 'off') throw new FerryError('FERRY_INVALID_REQUEST', `cgroups must be auto or off, not ${cgroups}`);
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
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) throw new FerryError('FERRY_INVALID_REQUEST', `bodyLimit must be a whole number of bytes, at least 1024`);
  const dockerSocket = (pick('dockerSocket') ?? '/run/podman/podman.sock').replace(/^unix:\/\//, '');
  return Object.freeze({
    host: pick('host') ?? '127.0.0.1',
    port,
    dataDir,
    databaseUrl: pick('databaseUrl') ?? null,
    substrate,
    capacity,
    cgroups,
    tokensFile: pick('tokensFile') ?? null,
    issueDefaults,
    bodyLimit,
    dockerSocket,
    defaultImage: pick('defaultImage') ?? null,
    tracker: compileTrackers([flags, env, file]),
  });
}

/** What the CLI needs to reach a server: flag > FERRY_URL/FERRY_TOKEN > the embedded data folder. */
export function clientSettings(flags: { url?: string; token?: string; dataDir?: string }, env: NodeJS.ProcessEnv = process.env): { url: string; token: string | null } {
  const dataDir = resolve(flags.dataDir ?? env.FERRY_DATA_DIR ?? './.ferry');
  const url = flags.url ?? env.FERRY_URL ?? readServerUrl(dataDir) ?? 'http://127.0.0.1:7070';
  let token = flags.token ?? env.FERRY_TOKEN ?? null;
  if (token === null) {
    try {
      token = readFileSync(resolve(dataDir, 'token'), 'utf8').trim();
    } catch {
      token = null;
    }
  }
  return { url: url.replace(/\/+$/, ''), token };
}

function readServerUrl(dataDir: string): string | null {
  try {
    return readFileSync(resolve(dataDir, 'server-url'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}
