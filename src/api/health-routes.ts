/** GET /healthz and GET /metrics (Prometheus): unauthenticated, for probes and scrapers. */
import type { FastifyInstance } from 'fastify';
import type { Runner } from '../runner/runner.ts';

export function registerHealthRoutes(app: FastifyInstance, runner: Runner): void {
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(runner.metrics.registry.contentType);
    return runner.metrics.registry.metrics();
  });
}
