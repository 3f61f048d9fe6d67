/**
 * The one-step migration the cluster and peers cases run through `ferry serve` over HTTP: the job
 * writes its own start time (`date +%s%N`) into its scratch, so the start is read from the job's
 * side. Tenants, filing and approval, as both cases do them.
 */
import { pool } from './support.ts';

/** The job's command: its start time in nanoseconds, in the scratch folder of the tenant's node. */
export const STAMP = 'date +%s%N > "$FERRY_SCRATCH/started"';

export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any; headers: Headers }>;

/** A node the migrations go through: its name and its API with the admin token. */
export interface BenchNode {
  readonly name: string;
  readonly api: Api;
}

/**
 * Register `count` tenants `<prefix>-<i>`, tenant i on node `home(i)`, through that node (named:
 * the tenant names its node, as a cluster needs). One at a time: on PostgreSQL, concurrent
 * registrations can pick the same free uid and one fails (500, `one_tenant_per_uid`).
 */
export async function registerTenants(prefix: string, count: number, home: (i: number) => BenchNode, named: boolean): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
  await pool(ids, 1, async (id, i) => {
    const node = home(i);
    const body = { steadyState: { cpu: '500m', memory: '32Mi' }, ...(named ? { node: node.name } : {}) };
    const r = await node.api('PUT', `/v1/tenants/${id}`, body);
    if (r.status !== 201 && r.status !== 200) throw new Error(`PUT tenant ${id} on ${node.name}: ${r.status} ${JSON.stringify(r.body)}`);
  });
  return ids;
}

/** File the stamp migration for `tenant` through `node`; its id. */
export async function fileStamp(node: BenchNode, tenant: string, issue: string): Promise<string> {
  const r = await node.api('POST', '/v1/migrations', {
    issue,
    tenant,
    // cpu 1 / memory 64Mi as in lifecycle: a tiny cpu quota would throttle sh and date and measure the quota.
    peak: { cpu: '1', memory: '64Mi' },
    snapshot: 'never',
    steps: [{ name: 'stamp', run: ['sh', '-c', STAMP] }],
  });
  if (r.status !== 201) throw new Error(`file ${tenant} through ${node.name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

export async function approve(node: BenchNode, id: string): Promise<void> {
  const r = await node.api('POST', `/v1/migrations/${id}/approve`, {});
  if (r.status !== 200) throw new Error(`approve ${id} through ${node.name}: ${r.status} ${JSON.stringify(r.body)}`);
}
