/**
 * This runner's membership of the cluster: its session (one live process per node name, notices
 * from the other nodes), its registration, and the lease it renews every `lostAfter / 6`.
 *
 * The rule that keeps a cut-off node from acting on stale ownership: it may start an attempt (or a
 * step) only while `canStart()`, which holds until half of `lostAfter` after the last renewal that
 * was *sent* and then committed. The others take it over only `lostAfter` after that renewal
 * committed (on the database's clock), so it has stopped starting things well before anyone could
 * consider it lost. Whatever it still writes after a takeover is refused by the store (fencing).
 *
 * Every renewal pass also takes over nodes whose lease ran out (Store.takeOverLostNodes).
 */
import { coerceError, FerryError } from '../core/errors.ts';
import type { LogFn } from '../core/log.ts';
import type { Notice } from '../store/notices.ts';
import type { NodeLease, TenantHome } from '../store/records.ts';
import type { NodeSession, Store } from '../store/store.ts';
import type { Substrate } from '../substrates/substrate.ts';
import type { Resources } from '../core/types.ts';

export interface MembershipOptions {
  readonly store: Store;
  readonly name: string;
  readonly lostAfterMs: number;
  readonly log: LogFn;
  readonly now: () => Date;
  /** The lease was found taken over: the runner stops acting on what it supervised and joins again. */
  readonly onFenced: () => void;
  /** Another live process is this node: this one must stop. */
  readonly onTaken: (err: FerryError) => void;
  readonly onNotice: (notice: Notice | { readonly t: 'reconnected' }) => void;
}

export class NodeMembership {
  private readonly opts: MembershipOptions;
  private session: NodeSession | null = null;
  private current: NodeLease | null = null;
  /** performance.now() until which this node may start attempts. */
  private validUntil = 0;
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;
  private url: string | null = null;

  constructor(opts: MembershipOptions) {
    this.opts = opts;
  }

  get name(): string {
    return this.opts.name;
  }

  /** The current lease; throws before join(). */
  get lease(): NodeLease {
    if (!this.current) throw new FerryError('FERRY_INTERNAL', `node ${this.opts.name} has not joined the cluster`);
    return this.current;
  }

  /** Whether this node may start an attempt or a step now (its lease is surely still its own). */
  canStart(): boolean {
    return this.current !== null && performance.now() < this.validUntil;
  }

  /** Whether this node sends the cluster's tracker comments now (one node at a time). */
  async outboxSender(): Promise<boolean> {
    return this.canStart() && this.session !== null && (await this.session.outboxSender());
  }

  /** Open the session (refusing a second live process of this node) and register with a new epoch. */
  async join(substrate: Substrate, capacity: Resources, tenantHome: TenantHome): Promise<void> {
    const { store, name } = this.opts;
    if (!this.session) {
      this.session = await store.openNodeSession(name, this.opts.onTaken, this.opts.log);
      this.session.onNotice(this.opts.onNotice);
    }
    // While the session reconnects another process may hold this node's name: register only with the lock.
    if (!this.session.holdsNodeLock()) throw new FerryError('FERRY_NODE_UNREACHABLE', `node ${name}: its session with PostgreSQL is reconnecting`);
    const sent = performance.now();
    const limits = substrate.limits();
    const { lease, previous } = await store.registerNode({
      name,
      substrate: substrate.kind,
      capacity,
      enforced: limits.enforced ? [...substrate.enforcedDimensions()] : null,
      tenantHome,
      now: this.opts.now(),
    });
    this.current = lease;
    this.validUntil = sent + this.opts.lostAfterMs / 2;
    if (this.url) await store.setNodeUrl(lease, this.url);
    if (previous?.state === 'lost')
      this.opts.log('warn', `node ${name} is back after being lost at ${previous.lostAt}; its running migrations were held lost meanwhile`);
  }

  /** Record the API address (once the server listens). */
  async setUrl(url: string): Promise<void> {
    this.url = url;
    if (this.current) await this.opts.store.setNodeUrl(this.current, url);
  }

  /** Renew the lease every lostAfter / 6 (at least every 10 s), and take over lost nodes. */
  startRenewing(): void {
    const every = Math.min(10_000, Math.max(200, Math.floor(this.opts.lostAfterMs / 6)));
    this.timer = setInterval(() => {
      this.pass ??= this.renew().finally(() => (this.pass = null));
    }, every);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    const { store, log } = this.opts;
    const lease = this.current;
    if (!lease) return;
    const sent = performance.now();
    let ok: boolean;
    try {
      ok = await store.renewNodeLease(lease);
    } catch (err) {
      log('warn', `node ${lease.name}: cannot renew its lease (${coerceError(err).message}); it starts nothing until it can`);
      return;
    }
    if (!ok) {
      if (this.current !== lease) return;
      this.current = null;
      this.validUntil = 0;
      log('warn', `node ${lease.name}: its lease was taken over (another node found it lost); it stops acting on its attempts and joins again`);
      this.opts.onFenced();
      return;
    }
    this.validUntil = sent + this.opts.lostAfterMs / 2;
    try {
      for (const t of await store.takeOverLostNodes(lease, this.opts.lostAfterMs, this.opts.now())) {
        log('warn', `node ${t.node} is lost (last seen ${t.lastSeenAt}): held ${t.held.length} running migration(s) with cause lost`, { held: t.held });
      }
    } catch (err) {
      if (!(err instanceof FerryError && err.code === 'FERRY_FENCED')) log('warn', `node ${lease.name}: takeover pass failed: ${coerceError(err).message}`);
    }
  }

  /** Stop renewing; with `leave`, mark the node `left` (a clean stop). Closes the session. */
  async stop(leave: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pass;
    const lease = this.current;
    this.current = null;
    this.validUntil = 0;
    if (leave && lease) await this.opts.store.leaveNode(lease).catch(() => undefined);
    await this.session?.close();
    this.session = null;
  }

  /** Forget the lease without leaving (the runner rejoins). */
  suspend(): void {
    this.current = null;
    this.validUntil = 0;
  }
}
