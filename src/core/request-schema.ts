/**
 * The request document (README.md "Request document"; docs/architecture.md) and the tenant document, validated
 * with zod. Unknown fields are errors at every level. `parseMigrationRequest` returns a
 * normalised MigrationRequest (quantities as integers, durations in ms, issue ref normalised).
 */
import { z } from 'zod';
import { FerryError } from './errors.ts';
import { parseDuration } from './duration.ts';
import { normaliseIssueRef, type IssueDefaults } from './issue-ref.ts';
import { parseQuantity } from './quantity.ts';
import type { Identity, MigrationRequest, Resources } from './types.ts';

export const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DIMENSION = /^[a-z][a-z0-9-]{0,31}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const STEP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const tenantId = z.string().regex(TENANT_ID, 'must be lower-case letters, digits and dashes, starting with a letter or digit, at most 63 characters');
const quantity = z.union([z.string().max(40), z.number()]);
/**
 * Text that may reach a job (argv, env, image): a NUL byte would end the string early in the C
 * side of the process substrate, so the job would run something other than what was approved.
 */
const jobText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');
const resources = z
  .record(z.string().regex(DIMENSION, 'dimension names are lower-case words like cpu, memory, ephemeral-storage'), quantity)
  .refine((r) => Object.keys(r).length <= 16, 'at most 16 dimensions');
const argv = z.array(jobText(65_536)).min(1, 'needs at least the program to run').max(1024);

const stepSchema = z.strictObject({
  name: z.string().regex(STEP_NAME, 'must be letters, digits, dots, dashes or underscores, at most 63 characters'),
  run: argv,
  timeout: z.union([z.string(), z.number()]).optional(),
});

export const requestSchema = z.strictObject({
  issue: jobText(300).pipe(z.string().min(1)),
  tenant: tenantId,
  peak: resources,
  steps: z.array(stepSchema).min(1, 'a migration needs at least one step').max(100),
  wipe: argv.optional(),
  snapshot: z.enum(['auto', 'always', 'never']).optional(),
  image: jobText(512).pipe(z.string().min(1)).optional(),
  env: z
    .record(
      z
        .string()
        .regex(ENV_NAME, 'environment names are letters, digits and underscores')
        .refine((name) => !name.startsWith('FERRY_'), 'FERRY_* names are set by Ferry itself'),
      // A value given as {secret: "..."} is never shown by the API, the CLI, threads or logs.
      z.union([jobText(65_536), z.strictObject({ secret: jobText(65_536) })]),
    )
    .refine((env) => Object.keys(env).length <= 256, 'at most 256 variables')
    .optional(),
});

const id = z
  .number()
  .int()
  .min(1, 'must not be 0: jobs never run as root (see allowRoot)')
  .max(2 ** 31 - 2);

export const tenantSchema = z.strictObject({
  steadyState: resources,
  data: jobText(1024).pipe(z.string().min(1)).optional(),
  runAs: z.strictObject({ uid: id, gid: id }).optional(),
  allowRoot: z.boolean().optional(),
  /** The node it lives on (default: the node that handles the registration). */
  node: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{0,62}$/i, 'a node name: letters, digits, . and -, up to 63')
    .optional(),
  /** Swarm substrate: the swarm node holding its data (name, id, or a constraint like node.labels.tenant==shop). */
  placement: z
    .string()
    .max(200)
    .regex(
      /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$|^node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[a-zA-Z0-9_.-]+)\s*(==|!=)\s*[a-zA-Z0-9_.-]+$/,
      'a swarm node name or id, or one constraint like node.labels.tenant==shop',
    )
    .optional(),
});

export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

/** Validate `input` against `schema`; on failure throw FERRY_INVALID_REQUEST listing every problem. */
export function validate<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems: FieldProblem[] = result.error.issues.slice(0, 20).map((issue) => ({
    path: issue.path.map(String).join('.') || '(document)',
    // zod reports a bad record key as "Invalid key in record"; the reason is in its nested issue.
    message: issue.code === 'invalid_key' && issue.issues[0] ? `${issue.issues[0].message} (${String(issue.path.at(-1))})` : issue.message,
  }));
  const summary = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  throw new FerryError('FERRY_INVALID_REQUEST', `the ${what} is not valid: ${summary}`, { problems });
}

function toResources(raw: Readonly<Record<string, string | number>>, field: string): Resources {
  const out: Record<string, number> = {};
  for (const [dimension, value] of Object.entries(raw)) {
    try {
      out[dimension] = parseQuantity(dimension, value);
    } catch (err) {
      if (err instanceof FerryError) {
        throw new FerryError('FERRY_INVALID_REQUEST', `the document is not valid: ${field}.${err.message}`, {
          problems: [{ path: `${field}.${dimension}`, message: err.message }],
        });
      }
      throw err;
    }
  }
  return out;
}

/** Validate and normalise a migration request document (already parsed from JSON or YAML). */
export function parseMigrationRequest(input: unknown, defaults?: IssueDefaults): MigrationRequest {
  const doc = validate(requestSchema, input, 'migration request');
  const peak = toResources(doc.peak, 'peak');
  requirePositive(peak, 'peak', 'migration request');
  // A confined process job runs under a small init inside its PID namespace, which counts too.
  if (Object.hasOwn(peak, 'pids') && (peak.pids as number) < 2)
    throw fieldError('peak.pids', 'must be at least 2 (the job and the init that ends everything it starts)');
  const secretEnv = Object.entries(doc.env ?? {})
    .filter(([, v]) => typeof v !== 'string')
    .map(([k]) => k);
  const names = new Set<string>();
  const steps = doc.steps.map((step, index) => {
    if (names.has(step.name)) throw fieldError(`steps.${index}.name`, `${step.name} is used twice; step names must be unique`);
    names.add(step.name);
    return {
      name: step.name,
      run: step.run,
      timeoutMs:
        step.timeout === undefined
          ? undefined
          : asField(`steps.${index}.timeout`, () => parseDuration(`steps.${index}.timeout`, step.timeout as string | number)),
    };
  });
  return {
    issue: asField('issue', () => normaliseIssueRef(doc.issue, defaults)),
    tenant: doc.tenant,
    peak,
    steps,
    wipe: doc.wipe,
    snapshot: doc.snapshot ?? 'auto',
    image: doc.image,
    env: Object.fromEntries(Object.entries(doc.env ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : v.secret])),
    ...(secretEnv.length > 0 ? { secretEnv } : {}),
  };
}

/** cpu and memory must be declared and above zero: a zero limit would admit a job that can never run. */
function requirePositive(r: Resources, field: string, what: string): void {
  for (const required of ['cpu', 'memory']) {
    const value = Object.hasOwn(r, required) ? r[required] : undefined;
    const message = value === undefined ? 'must be declared' : value <= 0 ? 'must be more than zero' : null;
    if (message) {
      throw new FerryError('FERRY_INVALID_REQUEST', `the ${what} is not valid: ${field}.${required} ${message}`, {
        problems: [{ path: `${field}.${required}`, message }],
      });
    }
  }
}

function fieldError(path: string, message: string): FerryError {
  return new FerryError('FERRY_INVALID_REQUEST', `the migration request is not valid: ${path}: ${message}`, { problems: [{ path, message }] });
}

/** Run a field's own parser, turning its error into one that names the field in `problems`. */
function asField<T>(path: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof FerryError) {
      throw new FerryError('FERRY_INVALID_REQUEST', `the migration request is not valid: ${err.message}`, { problems: [{ path, message: err.message }] });
    }
    throw err;
  }
}

export interface TenantInput {
  readonly steadyState: Resources;
  readonly data?: string | undefined;
  readonly runAs?: Identity | undefined;
  readonly allowRoot?: boolean | undefined;
  readonly node?: string | undefined;
  readonly placement?: string | undefined;
}

export function parseTenantInput(input: unknown): TenantInput {
  const doc = validate(tenantSchema, input, 'tenant');
  const steadyState = toResources(doc.steadyState, 'steadyState');
  requirePositive(steadyState, 'steadyState', 'tenant');
  return {
    steadyState,
    data: doc.data,
    runAs: doc.runAs,
    allowRoot: doc.allowRoot,
    ...(doc.node !== undefined ? { node: doc.node } : {}),
    ...(doc.placement !== undefined ? { placement: doc.placement } : {}),
  };
}
