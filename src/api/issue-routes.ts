/**
 * POST /v1/issues/:ref/close (operator): closing an issue cancels what is not final and removes
 * every artifact of its migrations, as the tracker's `closed` event does.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FerryError } from '../core/errors.ts';
import { validate } from '../core/request-schema.ts';
import type { Runner } from '../runner/runner.ts';
import { inScope } from './auth.ts';
import { issueParam } from './request-params.ts';
import type { RouteAccess } from './route-access.ts';

const closeBody = z.strictObject({}).optional();

export function registerIssueRoutes(app: FastifyInstance, runner: Runner, access: RouteAccess): void {
  const { auth, actor, principalOf } = access;

  app.post<{ Params: { ref: string } }>('/v1/issues/:ref/close', { onRequest: auth('operator') }, async (request) => {
    validate(closeBody, request.body, 'close request');
    const ref = issueParam(request.params.ref, runner.issueDefaults);
    const principal = principalOf(request);
    if (principal.tenants !== null) {
      // A limited token closes only issues whose every migration is of its tenants (and at least one).
      const migrations = await runner.store.listMigrations({ issue: ref });
      if (migrations.length === 0 || migrations.some((m) => !inScope(principal, m.tenant))) {
        throw new FerryError(
          'FERRY_NOT_FOUND',
          `no issue ${ref} with migrations that ${principal.name} may close; this token is limited to ${[...principal.tenants].join(', ')}`,
        );
      }
    }
    return runner.closeIssue(ref, actor(request));
  });
}
