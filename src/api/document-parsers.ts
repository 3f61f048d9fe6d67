/**
 * The body parsers of the API: request documents are JSON or YAML, nothing else (text/plain
 * included: a 415). Every document is bounded in depth before it is parsed
 * (src/core/document-bounds.ts), since a deep one would overflow the parser's stack. The webhook
 * scope replaces these with its raw-body parser (src/api/webhook-routes.ts).
 */
import type { FastifyInstance } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { assertDocumentBounds, assertValueBounds } from '../core/document-bounds.ts';
import { FerryError } from '../core/errors.ts';
import { firstLine } from './problems.ts';

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

export function registerDocumentParsers(app: FastifyInstance, bodyLimit: number): void {
  // The JSON parser is Fastify's own (prototype-poisoning protection included), behind the bound.
  const fastifyJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (request, body, done) => {
    try {
      assertDocumentBounds(body as string, 'json');
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    void fastifyJson(request, body as string, done);
  });
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    let value: unknown;
    try {
      assertDocumentBounds(body as string, 'yaml');
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    try {
      value = parseYaml(body as string, { uniqueKeys: true, maxAliasCount: 50, prettyErrors: true }) ?? undefined;
    } catch (err) {
      done(new FerryError('FERRY_BAD_REQUEST', `the body is not valid YAML: ${firstLine((err as Error).message)}`), undefined);
      return;
    }
    try {
      // Aliases repeat nodes, so the value can nest deeper than the text.
      assertValueBounds(value);
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    done(null, value);
  });
}
