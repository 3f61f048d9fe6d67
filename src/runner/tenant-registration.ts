/**
 * Tenant registration: a tenant's data place is checked against the rules of the node it lives on
 * (core/tenant-data.ts), its identity given, and its existing data handed over to that identity by
 * that node. Tenants stored before identities existed get one when the runner starts.
 */
import { join } from 'node:path';
import { parseTenantInput } from '../core/request-schema.ts';
import { folderDataProblem, volumeDataProblem } from '../core/tenant-data.ts';
import type { TenantHome, TenantRecord } from '../store/records.ts';
import { tenantError } from './errors.ts';
import type { RunnerContext } from './runner-context.ts';
import { asTenant } from './tenant-view.ts';

/** What a registration did: the tenant as stored, whether it is new, and what data this node handed over (null: none). */
export interface TenantRegistrationResult {
  tenant: TenantRecord;
  created: boolean;
  handedOver: string | null;
}

export interface TenantRegistrationOptions {
  /** uids (and gids) given to tenants that name no runAs (config `uidRange`). */
  readonly uidRange: { readonly first: number; readonly last: number };
  /** This node's rules for its tenants' data (the other nodes' are in the store). */
  tenantHome(): TenantHome;
}

export class TenantRegistration {
  private readonly ctx: RunnerContext;
  private readonly adopting: Set<string>;
  private readonly opts: TenantRegistrationOptions;

  constructor(ctx: RunnerContext, adopting: Set<string>, opts: TenantRegistrationOptions) {
    this.ctx = ctx;
    this.adopting = adopting;
    this.opts = opts;
  }

  /** Register or update a tenant (see Runner.putTenant). */
  async put(id: string, body: unknown): Promise<TenantRegistrationResult> {
    const { store, nodeName } = this.ctx;
    const input = parseTenantInput(body);
    const node = input.node ?? (await store.getTenant(id))?.node ?? nodeName;
    // The data lives on the tenant's node: its default place and what it must not overlap are that node's.
    const home = node === nodeName ? this.opts.tenantHome() : (await store.getNode(node))?.tenantHome;
    if (!home) {
      const known = (await store.listNodes()).map((n) => n.name).join(', ');
      throw tenantError('node', `there is no node ${node}; the nodes are: ${known}. A node exists once it has started`);
    }
    const folders = home.substrate === 'process';
    const defaultData = folders && home.tenantsDir ? join(home.tenantsDir, id) : `ferry-tenant-${id}`;
    const data = input.data ?? defaultData;
    // Tenants on other nodes are on other hosts: only those on the same node may not overlap.
    const others = (await store.listTenants()).filter((t) => t.id !== id && (t.node ?? node) === node);
    const context = { tenantId: id, defaultData, ferryPaths: home.ferryPaths, others };
    const problem = folders ? folderDataProblem(data, context) : volumeDataProblem(data, context);
    if (problem) throw tenantError('data', problem);
    if (input.allowRoot && folders) throw tenantError('allowRoot', 'process jobs never run as root; allowRoot is for the container substrate');
    if (input.placement !== undefined && home.substrate !== 'swarm') {
      throw tenantError('placement', `placement is for the swarm substrate; node ${node} runs jobs on the ${home.substrate} substrate, on its own host`);
    }
    const ownUid = process.getuid?.();
    if (input.runAs && input.runAs.uid === ownUid) throw tenantError('runAs.uid', `uid ${ownUid} is Ferry's own; give the tenant an identity of its own`);
    this.adopting.add(id);
    try {
      return await this.register(id, input, node, data);
    } finally {
      this.adopting.delete(id);
    }
  }

  private async register(id: string, input: ReturnType<typeof parseTenantInput>, node: string, data: string): Promise<TenantRegistrationResult> {
    const { store, substrate, nodeName } = this.ctx;
    const result = await store.putTenant(
      id,
      { steadyState: input.steadyState, data, runAs: input.runAs ?? null, allowRoot: input.allowRoot ?? false, node, placement: input.placement ?? null },
      this.opts.uidRange,
      this.ctx.now(),
    );
    // The data is on the tenant's node: this node hands it over if it is that node; else that node does, before its first start.
    let handedOver: string | null = null;
    if (node === nodeName) {
      handedOver = await substrate.adoptTenantData(asTenant(result.tenant));
      await store.markTenantAdopted(id, result.tenant.updatedAt, this.ctx.now());
      if (handedOver) this.ctx.log('info', `tenant ${id}: ${handedOver}`);
    }
    this.ctx.poke();
    return { tenant: result.tenant, created: result.created, handedOver };
  }

  /** Tenants registered before identities existed get one now, and (on their node) their data with it. */
  async giveMissingIdentities(): Promise<void> {
    const { store, substrate, nodeName } = this.ctx;
    for (const id of await store.assignMissingIdentities(this.opts.uidRange, this.ctx.now())) {
      const tenant = await store.getTenant(id);
      const handedOver = tenant && tenant.node === nodeName ? await substrate.adoptTenantData(asTenant(tenant)) : null;
      this.ctx.log('info', `tenant ${id} has no identity yet: gave it uid ${tenant?.runAs?.uid}${handedOver ? `; ${handedOver}` : ''}`);
    }
  }
}
