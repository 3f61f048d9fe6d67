/**
 * The one logging seam: the service hands a `LogFn` to the API, the runner and the tracker, which
 * never write to the console themselves. `fields` are structured context (ids, counts), never
 * secrets.
 */

export type LogLevel = 'info' | 'warn' | 'error';

/** Receives one log line. The service's default writes it to the console (src/service.ts). */
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;
