/**
 * Engagement threads, wired: one object for src/service.ts to start and stop and for the webhook
 * routes to hand deliveries to. It builds the tracker clients and the outbox, and puts together
 * the two jobs: deliveries in (delivery-handler.ts) and the threads following their migrations
 * (status-follower.ts). See docs/architecture.md for where the threads sit among the seams.
 */
import type { TrackerKind } from '../core/issue-ref.ts';
import type { Runner } from '../runner/runner.ts';
import type { Store } from '../store/store.ts';
import { createTrackerClient, type TrackerClient } from './clients.ts';
import { ThreadDeliveryHandler, type DeliveryAck, type DeliveryHandler } from './delivery-handler.ts';
import type { LogFn } from '../core/log.ts';
import { OutboxSender } from './outbox.ts';
import { StatusFollower } from './status-follower.ts';
import type { TrackersConfig } from './tracker-config.ts';
import type { DeliveryHeaders } from './webhook-verify.ts';

// The API's contract with the threads; src/api imports it from here.
export type { DeliveryAck, DeliveryHandler } from './delivery-handler.ts';

export interface ThreadServiceOptions {
  readonly store: Store;
  readonly runner: Runner;
  readonly config: TrackersConfig;
  readonly now?: () => Date;
  readonly log?: LogFn;
  /** For tests and proxies; default: the global fetch. */
  readonly fetch?: typeof fetch;
}

export class ThreadService implements DeliveryHandler {
  readonly clients: Readonly<Partial<Record<TrackerKind, TrackerClient>>>;
  readonly outbox: OutboxSender;
  private readonly config: TrackersConfig;
  private readonly log: LogFn;
  private readonly deliveries: ThreadDeliveryHandler;
  private readonly follower: StatusFollower;
  private readonly runner: Runner;
  private stopOutboxNotices: (() => void) | null = null;

  constructor(opts: ThreadServiceOptions) {
    this.config = opts.config;
    this.runner = opts.runner;
    const now = opts.now ?? (() => new Date());
    this.log = opts.log ?? (() => undefined);
    const clients: Partial<Record<TrackerKind, TrackerClient>> = {};
    for (const settings of Object.values(opts.config.trackers)) {
      if (settings.token === null) continue;
      clients[settings.kind] = createTrackerClient(settings.kind, { token: settings.token, baseUrl: settings.apiUrl ?? undefined, fetch: opts.fetch });
    }
    this.clients = clients;
    this.outbox = new OutboxSender({
      records: opts.store.threads,
      clients,
      settings: opts.config.outbox,
      now,
      log: this.log,
      isSender: () => opts.runner.outboxSender(),
    });
    const parts = { store: opts.store, config: opts.config, clients, outbox: this.outbox, now };
    this.deliveries = new ThreadDeliveryHandler({ ...parts, runner: opts.runner });
    this.follower = new StatusFollower({ ...parts, log: this.log });
  }

  /** Follow transitions, catch up on what a crash may have left unsent, and start the sender. */
  async start(): Promise<void> {
    for (const s of Object.values(this.config.trackers)) {
      if (s.webhookSecret !== null && s.token === null)
        this.log('warn', `${s.kind}: a webhook secret is set but no API token; Ferry acts on deliveries but cannot answer in threads`);
    }
    await this.follower.start();
    await this.outbox.start();
    // Comments another node enqueued: this node may be the cluster's sender.
    this.stopOutboxNotices = this.runner.onOutboxNotice(() => this.outbox.poke());
  }

  /** Stop following and sending; waits for work in flight. Call before the store closes. */
  async stop(): Promise<void> {
    this.stopOutboxNotices?.();
    this.stopOutboxNotices = null;
    await this.follower.stop();
    await this.outbox.stop();
  }

  handleDelivery(tracker: TrackerKind, headers: DeliveryHeaders, rawBody: Buffer): Promise<DeliveryAck> {
    return this.deliveries.handleDelivery(tracker, headers, rawBody);
  }
}
