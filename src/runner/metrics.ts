/** Prometheus metrics of one runner (prom-client, own registry so tests can run several). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class RunnerMetrics {
  readonly registry = new Registry();
  readonly transitions = new Counter({
    name: 'ferry_transitions_total',
    help: 'Lifecycle transitions, by target state',
    labelNames: ['to'] as const,
    registers: [this.registry],
  });
  readonly rejections = new Counter({
    name: 'ferry_admission_rejections_total',
    help: 'Requests refused by admit(), by where (filing, gate) and reason code',
    labelNames: ['where', 'code'] as const,
    registers: [this.registry],
  });
  readonly running = new Gauge({ name: 'ferry_attempts_running', help: 'Attempts running now', registers: [this.registry] });
  readonly queueToStart = new Histogram({
    name: 'ferry_queue_to_start_seconds',
    help: 'From entering queued to the first step job started',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly artifactsRemoved = new Counter({
    name: 'ferry_artifacts_removed_total',
    help: 'Artifacts deprovisioned, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ferry_process_' });
  }
}
