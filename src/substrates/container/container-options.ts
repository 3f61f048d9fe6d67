/**
 * Options of the `container` substrate, resolved once into a frozen config (STYLE.md §7).
 */
import { FerryError } from '../../core/errors.ts';
import type { Resources } from '../../core/types.ts';

/** The engine's socket when nothing names one: Podman's API service. The one default; config.ts uses it too. */
export const DEFAULT_SOCKET_PATH = '/run/podman/podman.sock';
const UNIX_SCHEME = 'unix://';

export interface ContainerSubstrateOptions {
  /**
   * Unix socket of the Docker Engine API (Docker, or Podman's `podman system service`): a path, or
   * `unix://<path>`. Default: the path of `DOCKER_HOST` when it is `unix://...`, else
   * `/run/podman/podman.sock` (DEFAULT_SOCKET_PATH). Only a local engine is supported: any other
   * address (`tcp://`, `ssh://`, ...) is refused, because tenant volumes, attempt logs and stop
   * markers live on this host.
   */
  readonly socketPath?: string | undefined;
  /**
   * Host folder for the substrate's own state: one small stop-intent marker per stopped job
   * (`<dataDir>/container-stops/<jobRef>.json`), so a cancel or a deadline survives a runner
   * restart. Required, no default. Attempt logs are not kept here: each step names its log file
   * (`StepSpec.logPath`).
   */
  readonly dataDir: string;
  /** What the node can ever provide. Default: the engine's `NCPU * 1000` millicores and `MemTotal` bytes, read at init(). */
  readonly capacity?: Resources | undefined;
  /**
   * Image for steps whose request names none, and for the snapshot/restore helper containers
   * (needs `sh`, `rm`, `cp`). Default: none (a step without an image, or a snapshot, is then refused).
   */
  readonly defaultImage?: string | undefined;
  /** `HostConfig.CgroupParent` of every job container. Default: the engine's own default. */
  readonly cgroupParent?: string | undefined;
  /** Seconds a stopped job (cancel, deadline) gets between SIGTERM and SIGKILL. Default: 10. */
  readonly stopGraceSeconds?: number | undefined;
  /** How long init() waits for the engine to answer a ping, in ms. Default: 5000. */
  readonly pingTimeoutMs?: number | undefined;
  /**
   * `HostConfig.PidsLimit` of a job whose peak declares no `pids`: every job gets a pids limit, so a
   * fork bomb stays inside its container. Default: 1024.
   */
  readonly defaultPidsLimit?: number | undefined;
  /**
   * Most bytes one step appends to the attempt log: the first half as they come, then the last half
   * (see job-log.ts). Default: 64 MiB.
   */
  readonly logLimit?: number | undefined;
}

export interface ContainerSubstrateConfig {
  readonly socketPath: string;
  readonly dataDir: string;
  readonly capacity: Resources | null;
  readonly defaultImage: string | null;
  readonly cgroupParent: string | null;
  readonly stopGraceSeconds: number;
  readonly pingTimeoutMs: number;
  readonly defaultPidsLimit: number;
  readonly logLimit: number;
}

const DEFAULT_PIDS_LIMIT = 1024;
const DEFAULT_LOG_LIMIT = 64 * 1024 * 1024;
/** Smallest logLimit: a head and a tail of 512 bytes each still say something. */
const MIN_LOG_LIMIT = 1024;

/**
 * Resolve raw options. `env` is passed in (default `process.env`) so that this is the one place
 * the substrate reads the environment, and tests can give their own.
 */
export function resolveContainerOptions(
  raw: ContainerSubstrateOptions,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ContainerSubstrateConfig {
  if (!raw.dataDir) {
    throw new FerryError('FERRY_BAD_REQUEST', 'container substrate: dataDir is required (a host folder for stop markers)');
  }
  const stopGraceSeconds = raw.stopGraceSeconds ?? 10;
  if (!Number.isInteger(stopGraceSeconds) || stopGraceSeconds < 0) {
    throw new FerryError('FERRY_BAD_REQUEST', `container substrate: stopGraceSeconds must be a whole number >= 0, got ${String(raw.stopGraceSeconds)}`);
  }
  const defaultPidsLimit = raw.defaultPidsLimit ?? DEFAULT_PIDS_LIMIT;
  if (!Number.isInteger(defaultPidsLimit) || defaultPidsLimit < 1) {
    throw new FerryError('FERRY_BAD_REQUEST', `container substrate: defaultPidsLimit must be a whole number >= 1, got ${String(raw.defaultPidsLimit)}`);
  }
  const logLimit = raw.logLimit ?? DEFAULT_LOG_LIMIT;
  if (!Number.isInteger(logLimit) || logLimit < MIN_LOG_LIMIT) {
    throw new FerryError('FERRY_BAD_REQUEST', `container substrate: logLimit must be a whole number of bytes >= ${MIN_LOG_LIMIT}, got ${String(raw.logLimit)}`);
  }
  return Object.freeze({
    socketPath: raw.socketPath !== undefined ? localSocketPath(raw.socketPath) : (socketFromDockerHost(env['DOCKER_HOST']) ?? DEFAULT_SOCKET_PATH),
    dataDir: raw.dataDir,
    capacity: raw.capacity ? Object.freeze({ ...raw.capacity }) : null,
    defaultImage: raw.defaultImage ?? null,
    cgroupParent: raw.cgroupParent ?? null,
    stopGraceSeconds,
    pingTimeoutMs: raw.pingTimeoutMs ?? 5000,
    defaultPidsLimit,
    logLimit,
  });
}

/**
 * The socket path of an engine address: a path as it is, `unix://<path>` without its scheme. Any
 * other scheme is a remote engine, refused. This is where every address ends up, whoever named it
 * (`socketPath`, `DOCKER_HOST`, or `ferry serve`'s `dockerSocket` / `FERRY_DOCKER_SOCKET`).
 */
function localSocketPath(address: string): string {
  if (address.startsWith(UNIX_SCHEME)) return address.slice(UNIX_SCHEME.length);
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(address)) throw remoteEngineRefused(address);
  return address;
}

/** DOCKER_HOST, read only when no socketPath is given: a `unix://` address only. */
function socketFromDockerHost(value: string | undefined): string | null {
  if (!value) return null;
  if (value.startsWith(UNIX_SCHEME)) return value.slice(UNIX_SCHEME.length);
  throw remoteEngineRefused(value);
}

function remoteEngineRefused(address: string): FerryError {
  return new FerryError(
    'FERRY_BAD_REQUEST',
    `container engine address ${address} is not supported: the container substrate needs a local engine (unix://<path> or a socket path), because tenant volumes, attempt logs and stop markers live on this host; point DOCKER_HOST, FERRY_DOCKER_SOCKET or dockerSocket at the local engine's socket, or unset them for ${DEFAULT_SOCKET_PATH}`,
    { address },
  );
}
