/**
 * What the API shows of a migration: the record plus its attempts, events and artifacts, its
 * tenant's node and the node of each attempt.
 * A secret env value (`env: {NAME: {secret: ...}}` in the request) is never shown: the request's
 * env shows SECRET_SHOWN in its place, and any free text that happens to contain it (an event's
 * reason, a held detail, a step's argument) has it replaced the same way.
 */
import { describeActions, heldFactsOf } from '../core/recovery.ts';
import type { MigrationRequest } from '../core/types.ts';
import type { ArtifactRecord, AttemptRecord, EventRecord, MigrationRecord, TenantRecord } from '../store/records.ts';
import type { Store } from '../store/store.ts';

/**
 * A migration in a list. `node` is its tenant's node (where its attempts start), when the caller
 * looked it up (tenantNodes); the live event stream leaves it out rather than read the tenant per
 * transition.
 */
export function migrationSummary(m: MigrationRecord, node?: string | null) {
  return {
    id: m.id,
    issue: m.issue,
    tenant: m.tenant,
    ...(node !== undefined ? { node } : {}),
    state: m.state,
    attempts: m.attempts,
    peak: m.peak,
    heldCause: m.heldCause,
    progress: m.progress,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  };
}

/** What the API, the CLI and threads show instead of a secret value. */
export const SECRET_SHOWN = '(secret)';

/** The secret values of a request, longest first (so that a secret inside another is not half-masked). */
export function secretValues(request: MigrationRequest): string[] {
  const names = request.secretEnv ?? [];
  const values = names.map((n) => request.env[n]).filter((v): v is string => typeof v === 'string' && v.length > 0);
  return [...new Set(values)].sort((a, b) => b.length - a.length);
}

/** `text` with every occurrence of a secret value replaced by SECRET_SHOWN. */
export function maskText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(SECRET_SHOWN);
  return out;
}

/** Every string inside `value` masked (values of our own views: shallow and acyclic). */
function maskDeep<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  if (typeof value === 'string') return maskText(value, secrets) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => maskDeep(v, secrets)) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskDeep(v, secrets)])) as T;
  return value;
}

/** The request as shown: secret env values replaced by SECRET_SHOWN, everywhere in it. */
export function requestView(request: MigrationRequest): MigrationRequest {
  const secrets = secretValues(request);
  const hidden = new Set(request.secretEnv ?? []);
  if (hidden.size === 0) return request;
  const env = Object.fromEntries(Object.entries(request.env).map(([k, v]) => [k, hidden.has(k) ? SECRET_SHOWN : maskText(v, secrets)]));
  return { ...maskDeep({ ...request, env: {} }, secrets), env };
}

/** Lookups of the tenants of a page at most one by one; past this many, all tenants are read at once. */
const TENANT_LOOKUPS = 20;

/**
 * The node of each tenant of `migrations` (null: a tenant without one, or gone): one lookup per
 * distinct tenant, or one read of every tenant when the page has many.
 */
export async function tenantNodes(store: Store, migrations: readonly MigrationRecord[]): Promise<Map<string, string | null>> {
  const ids = [...new Set(migrations.map((m) => m.tenant))];
  const nodes = new Map<string, string | null>();
  if (ids.length === 0) return nodes;
  if (ids.length > TENANT_LOOKUPS) {
    for (const t of await store.listTenants()) nodes.set(t.id, t.node);
  } else {
    const tenants = await Promise.all(ids.map((id) => store.getTenant(id)));
    for (const t of tenants) if (t) nodes.set(t.id, t.node);
  }
  for (const id of ids) if (!nodes.has(id)) nodes.set(id, null);
  return nodes;
}

/**
 * A migration with its attempts, events and artifacts. `tenant`: its tenant as the caller just read
 * it (the gate of a filing or approval), so that it is not read again for its node.
 */
export async function migrationDetail(store: Store, m: MigrationRecord, tenant?: TenantRecord | null) {
  // Artifacts are recorded only with an attempt (its start, its steps): a migration that has had
  // none has neither, whatever a read would race into after `m` was read.
  const started = m.attempts > 0;
  const [attempts, events, artifacts, stored] = await Promise.all([
    started ? store.listAttempts(m.id) : [],
    store.listEvents(m.id),
    started ? store.listArtifacts({ migrationId: m.id }) : [],
    tenant === undefined ? store.getTenant(m.tenant) : tenant,
  ]);
  const secrets = secretValues(m.request);
  return {
    ...migrationSummary(m, stored?.node ?? null),
    attempts: attempts.map((a) => ({ ...attemptView(a), detail: maskDeep(a.detail, secrets) })),
    request: requestView(m.request),
    verdict: m.verdict,
    filedBy: m.filedBy,
    failedStep: m.failedStep,
    heldDetail: m.heldDetail === null ? null : maskText(m.heldDetail, secrets),
    // Checkpoints are printed by the job, so they may contain what the job was given.
    checkpoint: maskDeep(m.checkpoint, secrets),
    limitsEnforced: m.limitsEnforced,
    isolated: m.isolated,
    snapshot: m.snapshot,
    next: maskDeep(m.next, secrets),
    actions: m.state === 'held' ? maskDeep(describeActions(heldFactsOf(m, attempts.at(-1)?.step ?? null)), secrets) : null,
    events: events.map((e) => ({ ...eventView(e), reason: maskDeep(e.reason, secrets), detail: maskDeep(e.detail, secrets) })),
    artifacts: artifacts.map(artifactView),
  };
}

function attemptView(a: AttemptRecord) {
  return {
    number: a.number,
    fromStep: a.fromStep,
    step: a.step,
    exitCode: a.exitCode,
    signal: a.signal,
    cause: a.cause,
    detail: a.detail,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
    /** The node that started the attempt: its job, scratch and log are there. */
    node: a.node,
  };
}

function eventView(e: EventRecord) {
  return { at: e.at, actor: e.actor, kind: e.kind, from: e.from, to: e.to, reason: e.reason, detail: e.detail };
}

function artifactView(a: ArtifactRecord) {
  return { kind: a.kind, ref: a.ref, state: a.state, recordedAt: a.recordedAt, createdAt: a.createdAt, removedAt: a.removedAt };
}
