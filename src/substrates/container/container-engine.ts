/**
 * What the parts of the container substrate share, built once by ContainerSubstrate: the engine's
 * client, the resolved options and the stop markers.
 */
import type Docker from 'dockerode';
import type { ContainerSubstrateConfig } from './container-options.ts';
import { isNotFound } from './engine-errors.ts';
import type { StopMarkers } from './stop-markers.ts';

export interface ContainerEngine {
  readonly docker: Docker;
  readonly config: ContainerSubstrateConfig;
  readonly stops: StopMarkers;
}

/** A container's state, or null when it does not exist. */
export async function inspectOrNull(container: Docker.Container): Promise<Docker.ContainerInspectInfo | null> {
  try {
    return await container.inspect();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** Engines report nanoseconds (`...32.052591482Z`); Date.parse wants at most milliseconds. Unreadable: now. */
export function parseEngineTime(value: string | undefined): number {
  const ms = Date.parse((value ?? '').replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? Date.now() : ms;
}
