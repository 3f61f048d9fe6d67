// Shared test helpers for the tracker tests: payload fixtures, signing, a recording HTTP server.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { sign } from '@octokit/webhooks-methods';

const require = createRequire(import.meta.url);

interface WebhookDefinition {
  readonly name: string;
  readonly examples: readonly Record<string, unknown>[];
}

/** A real GitHub payload from @octokit/webhooks-examples: the first example of `event` with `action`. */
export function githubExample(event: string, action: string): Record<string, unknown> {
  const definitions = require('@octokit/webhooks-examples') as readonly WebhookDefinition[];
  const example = definitions.find((d) => d.name === event)?.examples.find((e) => e.action === action);
  if (example === undefined) throw new Error(`@octokit/webhooks-examples has no ${event}.${action} example`);
  return structuredClone(example);
}

export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

export function body(payload: unknown): Buffer {
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

export async function githubSignature(secret: string, raw: Buffer): Promise<string> {
  return sign(secret, raw.toString('utf8'));
}

export function giteaSignature(secret: string, raw: Buffer): string {
  return createHmac('sha256', secret).update(raw).digest('hex');
}

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface ScriptedResponse {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export interface Recorder {
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** Responses to give, in order, before falling back to the default. */
  readonly queue: ScriptedResponse[];
  close(): Promise<void>;
}

/** A local server on 127.0.0.1 that records every request and answers from a script. */
export async function startRecorder(fallback: (request: RecordedRequest) => ScriptedResponse): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  const queue: ScriptedResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(recorded);
      const response = queue.shift() ?? fallback(recorded);
      res.writeHead(response.status, { 'content-type': 'application/json', ...response.headers });
      res.end(response.body === undefined ? '' : JSON.stringify(response.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    queue,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
