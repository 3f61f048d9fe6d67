/** A small HTTP client for the Ferry API, turning problem+json answers into typed errors. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: Record<string, unknown>;
  constructor(status: number, body: Record<string, unknown>) {
    super(typeof body.detail === 'string' ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.code = typeof body.code === 'string' ? body.code : 'UNKNOWN';
    this.body = body;
  }
}

export class FerryClient {
  readonly url: string;
  private readonly token: string | null;

  constructor(url: string, token: string | null) {
    this.url = url;
    this.token = token;
  }

  async request<T>(method: string, path: string, body?: { json?: unknown; yaml?: string }): Promise<T> {
    const res = await this.raw(method, path, body);
    const text = await res.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) throw new ApiError(res.status, (parsed ?? {}) as Record<string, unknown>);
    return parsed as T;
  }

  async raw(method: string, path: string, body?: { json?: unknown; yaml?: string }): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body?.yaml !== undefined) {
      headers['content-type'] = 'application/yaml';
      payload = body.yaml;
    } else if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    }
    try {
      return await fetch(`${this.url}${path}`, { method, headers, body: payload ?? null });
    } catch (err) {
      throw new Error(`cannot reach Ferry at ${this.url} (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}); start it with ferry serve, or set FERRY_URL`);
    }
  }
}
