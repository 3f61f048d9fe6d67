/**
 * Bounds on the HTTP server's connections, so that a flood of them cannot take the descriptors a
 * running job needs (its log) or the store needs, nor keep the server from answering.
 *
 * - The cap: `maxConnections` (default 1000), lowered when the process's descriptor limit (soft
 *   "Max open files" in /proc/self/limits) leaves fewer than `reserveDescriptors` (default 256) for
 *   the store, running jobs' logs and the substrate. Node refuses connections past it.
 * - Near the cap, a new connection takes the place of the oldest connection that has no request in
 *   progress (a half-sent request, or an idle keep-alive): a slow-headers flood then evicts itself
 *   and a real client still gets in. Connections serving a request (a log follower) are never
 *   evicted; followers have bounds of their own.
 * - Time: headers must arrive within `headersTimeout` (10 s) and a whole request within
 *   `requestTimeout` (60 s); an idle keep-alive connection closes after `keepAliveTimeout` (5 s).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/** The soft "Max open files" of /proc/self/limits text; `null` when unknown or unlimited. */
export function descriptorSoftLimit(limitsText: string): number | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined || !/^\d+$/.test(soft)) return null;
  return Number(soft);
}

/** This process's soft descriptor limit, or `null` where /proc is not there (not Linux). */
export function processDescriptorLimit(): number | null {
  try {
    return descriptorSoftLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/** The connection cap: `configured`, lowered to leave `reserve` descriptors free; at least 16. */
export function connectionCap(configured: number, softLimit: number | null, reserve: number): number {
  if (softLimit === null) return configured;
  return Math.max(16, Math.min(configured, softLimit - reserve));
}

/**
 * Enforce `cap` on `server`: Node's maxConnections refuses past it, and from a little below it a
 * new connection evicts the oldest one with no request in progress.
 */
export function guardConnections(server: Server, cap: number): { readonly open: () => number } {
  server.maxConnections = cap;
  const evictFrom = Math.max(1, cap - Math.max(1, Math.ceil(cap / 16)));
  let open = 0;
  // Sockets with no request in progress, oldest first (a Map keeps insertion order).
  const idle = new Map<Socket, true>();
  server.on('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => {
      open--;
      idle.delete(socket);
    });
    if (open > evictFrom) {
      const [oldest] = idle.keys();
      if (oldest !== undefined) {
        idle.delete(oldest);
        oldest.destroy();
      }
    }
    idle.set(socket, true);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    idle.delete(socket);
    res.once('close', () => {
      if (!socket.destroyed) idle.set(socket, true);
    });
  });
  return { open: () => open };
}
