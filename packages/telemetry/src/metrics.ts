/**
 * Prometheus metrics (prom-client) of the gateway and every subgraph, served on /metrics by the
 * kit's HTTP server. One registry per process (embedded mode: every service's series, told apart
 * by their `service`/`group` labels). Label values are bounded: names come from code (subgraphs,
 * topics, event types, saga types) or, for client operation names, pass through `bounded()`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type GaugeConfiguration } from 'prom-client';

export const METRICS_PATH = '/metrics';
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const registers = [registry];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SLOW_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

// ---------------------------------------------------------------- GraphQL (gateway and subgraphs)
const opLabels = ['service', 'operation_type', 'operation_name'] as const;
export const graphqlRequests = new Counter({ name: 'crm_graphql_requests_total', help: 'GraphQL operations served', labelNames: opLabels, registers });
export const graphqlErrors = new Counter({
  name: 'crm_graphql_errors_total',
  help: 'GraphQL operations answered with errors, by first error code',
  labelNames: [...opLabels, 'code'],
  registers,
});
export const graphqlDuration = new Histogram({
  name: 'crm_graphql_request_duration_seconds',
  help: 'GraphQL operation latency',
  labelNames: opLabels,
  buckets: LATENCY_BUCKETS,
  registers,
});

// ---------------------------------------------------------------- gateway
export const subgraphFetchDuration = new Histogram({
  name: 'crm_gateway_subgraph_fetch_duration_seconds',
  help: 'Gateway to subgraph fetch latency',
  labelNames: ['subgraph'],
  buckets: LATENCY_BUCKETS,
  registers,
});
export const subgraphFetchErrors = new Counter({
  name: 'crm_gateway_subgraph_fetch_errors_total',
  help: 'Subgraph fetches that failed (network), ran out of time (timeout) or answered with errors (graphql)',
  labelNames: ['subgraph', 'kind'],
  registers,
});
export const gatewayRefusals = new Counter({
  name: 'crm_gateway_refusals_total',
  help: 'Operations refused by the rate limit or the cost limit',
  labelNames: ['reason'],
  registers,
});

// ---------------------------------------------------------------- live subscriptions
export const wsDeliveries = new Counter({ name: 'crm_ws_deliveries_total', help: 'Subscription payloads queued to WebSocket subscribers', labelNames: ['field'], registers });
export const wsDropped = new Counter({
  name: 'crm_ws_dropped_total',
  help: 'Subscription payloads not delivered (subscriber queue full or closed)',
  labelNames: ['field'],
  registers,
});
export const eventToDelivery = new Histogram({
  name: 'crm_event_delivery_latency_seconds',
  help: 'From an event occurring to its payload queued to a subscriber',
  labelNames: ['field'],
  buckets: SLOW_BUCKETS,
  registers,
});

// ---------------------------------------------------------------- events
export const eventsHandled = new Counter({
  name: 'crm_events_handled_total',
  help: 'Events consumed, by outcome (handled, duplicate, dead_lettered)',
  labelNames: ['group', 'topic', 'type', 'outcome'],
  registers,
});
export const eventRetries = new Counter({ name: 'crm_event_retries_total', help: 'Event handler attempts that failed and were retried', labelNames: ['group', 'type'], registers });
export const deadLetters = new Counter({ name: 'crm_events_dead_lettered_total', help: 'Events sent to <topic>.dlq', labelNames: ['group', 'topic'], registers });
export const eventHandlingDuration = new Histogram({
  name: 'crm_event_handling_duration_seconds',
  help: 'Time to handle one event (retries included)',
  labelNames: ['group', 'type'],
  buckets: LATENCY_BUCKETS,
  registers,
});
export const outboxPublished = new Counter({ name: 'crm_outbox_published_total', help: 'Outbox rows published by the relay', labelNames: ['topic'], registers });
export const outboxLeaseTakeovers = new Counter({
  name: 'crm_outbox_lease_takeovers_total',
  help: "Outbox rows a relay claimed after another relay's lease on them expired (a frozen or dead replica)",
  labelNames: [],
  registers,
});

// ---------------------------------------------------------------- sagas
export const sagasFinished = new Counter({ name: 'crm_sagas_finished_total', help: 'Sagas that reached a final status', labelNames: ['saga_type', 'status'], registers });
export const sagaDuration = new Histogram({
  name: 'crm_saga_duration_seconds',
  help: 'Saga duration from its first step to its final status',
  labelNames: ['saga_type', 'status'],
  buckets: SLOW_BUCKETS,
  registers,
});

// ---------------------------------------------------------------- sampled at scrape time
type Sampler<L extends string> = (gauge: Gauge<L>) => Promise<void> | void;
const SAMPLE_TIMEOUT_MS = 3000;

/** A gauge whose series are recomputed at each scrape by the samplers added to it (each bounded in time). */
export class SampledGauge<L extends string> {
  private readonly samplers = new Set<Sampler<L>>();
  readonly gauge: Gauge<L>;

  constructor(config: Omit<GaugeConfiguration<L>, 'collect' | 'registers'>) {
    const samplers = this.samplers;
    this.gauge = new Gauge<L>({
      ...config,
      registers,
      async collect() {
        this.reset();
        await Promise.all([...samplers].map((s) => withTimeout(Promise.resolve().then(() => s(this))).catch(() => undefined)));
      },
    });
  }

  /** Adds a sampler; the returned function removes it (stop). */
  add(sampler: Sampler<L>): () => void {
    this.samplers.add(sampler);
    return () => void this.samplers.delete(sampler);
  }
}

export const consumerLag = new SampledGauge({
  name: 'crm_consumer_lag_messages',
  help: 'Messages not yet consumed, per consumer group, topic and partition',
  labelNames: ['group', 'topic', 'partition'],
});
export const outboxBacklog = new SampledGauge({ name: 'crm_outbox_backlog_messages', help: 'Outbox rows not yet published', labelNames: ['service'] });
export const outboxOldestAge = new SampledGauge({
  name: 'crm_outbox_oldest_unsent_age_seconds',
  help: 'Age of the oldest unpublished outbox row (0 when none)',
  labelNames: ['service'],
});
export const wsConnections = new SampledGauge({ name: 'crm_ws_connections', help: 'Open WebSocket connections', labelNames: [] });
export const wsSubscriptions = new SampledGauge({ name: 'crm_ws_subscriptions', help: 'Active subscriptions', labelNames: [] });

function withTimeout<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('metrics sampler timed out')), SAMPLE_TIMEOUT_MS);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- bounded labels
const LABEL_VALUES_MAX = 200;
const seen = new Map<string, Set<string>>();

/**
 * A label value from outside (a client's operation name, an error code): kept when it looks like a
 * GraphQL name and fewer than LABEL_VALUES_MAX distinct values of that label were seen, else
 * "(other)" — a client cannot grow the series without bound.
 */
export function bounded(label: string, value: string | null | undefined, fallback = '(anonymous)'): string {
  if (!value) return fallback;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,99}$/.test(value)) return '(other)';
  let values = seen.get(label);
  if (!values) seen.set(label, (values = new Set()));
  if (values.has(value)) return value;
  if (values.size >= LABEL_VALUES_MAX) return '(other)';
  values.add(value);
  return value;
}

/** Who may read /metrics: with a token, only its bearer; without one, everyone outside production and no one in it. */
export interface MetricsAccess {
  token?: string | undefined;
  production: boolean;
}

/** Whether a request may read /metrics under `access`: 'ok', or the HTTP status to refuse it with. */
export function metricsAccessFor(access: MetricsAccess = { production: false }): (authorization: string | undefined) => 'ok' | 401 | 404 {
  const expected = access.token ? createHash('sha256').update(access.token).digest() : undefined;
  return (authorization) => {
    if (!expected) return access.production ? 404 : 'ok';
    const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '';
    return timingSafeEqual(createHash('sha256').update(given).digest(), expected) ? 'ok' : 401;
  };
}

/** GET /metrics in the Prometheus text exposition format. */
export async function serveMetrics(_req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await registry.metrics();
  res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
  res.end(body);
}
