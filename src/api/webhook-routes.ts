/**
 * POST /v1/hooks/github, /v1/hooks/gitea (Gitea and Forgejo), /v1/hooks/gitlab: signed webhook
 * deliveries. Signatures are computed over the exact bytes received, so this scope replaces the
 * JSON parser with one that hands over the raw body (same bodyLimit: a larger body is a 413).
 * Authentication comes first: an unsigned or mis-signed delivery is a 401 whatever its content,
 * with one exception: a body nesting deeper than 64 levels is refused (400 FERRY_DOCUMENT_TOO_DEEP)
 * as it is read, before its signature is checked. No tracker sends such a payload, the check is
 * cheaper than an HMAC, and it says nothing about what a well-formed delivery looks like.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { documentBoundsProblem, boundsError } from '../core/document-bounds.ts';
import { FerryError } from '../core/errors.ts';
import { TRACKERS } from '../core/issue-ref.ts';
import type { DeliveryHandler } from '../tracker/thread-service.ts';
import { verifyDelivery } from '../tracker/webhook-verify.ts';

export interface WebhookDeps {
  readonly bodyLimit: number;
  /** Null when issue threads are not set up: every delivery is then refused (no secret, fail closed). */
  readonly handler: DeliveryHandler | null;
}

export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookDeps): void {
  void app.register(
    async (scope) => {
      scope.removeAllContentTypeParsers();
      const raw = (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
        // Deliveries are JSON (parsed in src/tracker/thread-events.ts): bounded before anything parses them.
        const problem = documentBoundsProblem(Buffer.isBuffer(body) ? body.toString('utf8') : body, 'json');
        if (problem !== null) done(boundsError(problem));
        else done(null, body);
      };
      scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: deps.bodyLimit }, raw);
      // Any other type is read raw too, so that it is authenticated (401) before it is refused (400).
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.bodyLimit }, raw);
      for (const tracker of TRACKERS) {
        scope.post(`/${tracker}`, async (request) => {
          const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
          if (deps.handler !== null) return deps.handler.handleDelivery(tracker, request.headers, body);
          const refused = await verifyDelivery(tracker, request.headers, body, undefined);
          throw new FerryError(refused.ok ? 'FERRY_UNAUTHENTICATED' : refused.code, refused.ok ? 'webhook deliveries are not accepted' : refused.message);
        });
      }
    },
    { prefix: '/v1/hooks' },
  );
}
