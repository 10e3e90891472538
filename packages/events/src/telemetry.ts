/**
 * Telemetry of the event path, called from small hooks in the outbox, relay and consumer:
 * - the outbox row keeps the W3C traceparent of the span that staged the event;
 * - the relay publishes each row in a PRODUCER span (child of that traceparent) and sends the
 *   span's traceparent as a Kafka header;
 * - a consumer handles each message in a CONSUMER span, child of and linked to the producer's;
 * - counters of handled/duplicate/dead-lettered events and retries, handling latency, and
 *   per group/partition lag and the outbox backlog sampled at scrape time.
 */
import { context, ROOT_CONTEXT, SpanKind, trace, type Link } from '@opentelemetry/api';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { DeliveredMessage, EventBus } from './bus';
import type { KafkaBus } from './kafka-bus';
import type { MemoryBus } from './memory-bus';
import type { PostgresBus } from './postgres-bus';
import {
  consumerLag,
  deadLetters,
  eventHandlingDuration,
  eventToDelivery,
  wsDeliveries,
  wsDropped,
  eventRetries,
  eventsHandled,
  outboxBacklog,
  outboxOldestAge,
  outboxPublished,
  sagaDuration,
  sagasFinished,
} from '@crm/telemetry';
import { contextFromTraceparent, currentTraceparent, failSpan, tracer, withEventNote, withSpan } from '@crm/telemetry';

export { currentTraceparent as outboxTraceparent } from '@crm/telemetry';

interface PublishRow {
  topic: string;
  traceparent?: string | null;
}

/**
 * Publishes outbox rows through `publish`, each in a PRODUCER span continuing the row's trace;
 * `publish` gets the headers to send with each row (its span's traceparent).
 */
export async function tracePublish(rows: PublishRow[], publish: (headers: Record<string, string>[]) => Promise<void>): Promise<void> {
  const spans = rows.map((row) =>
    row.traceparent
      ? tracer().startSpan(
          `publish ${row.topic}`,
          {
            kind: SpanKind.PRODUCER,
            attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'send', 'messaging.destination.name': row.topic },
          },
          contextFromTraceparent(row.traceparent),
        )
      : undefined,
  );
  const headers = spans.map((span, i) => {
    const own = span ? currentTraceparent(trace.setSpan(ROOT_CONTEXT, span)) : null;
    return traceparentHeader(own ?? rows[i]!.traceparent);
  });
  try {
    await publish(headers);
    for (const row of rows) outboxPublished.inc({ topic: row.topic });
  } catch (err) {
    for (const span of spans) if (span) failSpan(span, err);
    throw err;
  } finally {
    for (const span of spans) span?.end();
  }
}

function traceparentHeader(traceparent: string | null | undefined): Record<string, string> {
  return traceparent ? { traceparent } : {};
}

/**
 * Handles delivered messages in a CONSUMER span. One message: the span continues (and links to) the
 * producer's trace. Several (a batch handler's run): one span linking every producer (OpenTelemetry's
 * batch-processing convention), in the first message's trace.
 */
export function traceConsume<T>(group: string, delivered: DeliveredMessage | DeliveredMessage[], handle: () => Promise<T>): Promise<T> {
  const messages = Array.isArray(delivered) ? delivered : [delivered];
  const message = messages[0]!;
  const parent = contextFromTraceparent(message.headers.traceparent);
  const links: Link[] = [];
  for (const m of messages) {
    const producer = trace.getSpanContext(m === message ? parent : contextFromTraceparent(m.headers.traceparent));
    if (producer) links.push({ context: producer });
  }
  const span = tracer().startSpan(
    `process ${message.topic}`,
    {
      kind: SpanKind.CONSUMER,
      links,
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'process',
        'messaging.destination.name': message.topic,
        'messaging.consumer.group.name': group,
        'messaging.destination.partition.id': String(message.partition),
        'messaging.kafka.offset': Number(message.offset),
        ...(messages.length > 1 ? { 'messaging.batch.message_count': messages.length } : {}),
      },
    },
    parent,
  );
  return context.with(withEventNote(trace.setSpan(parent, span)), async () => {
    try {
      return await handle();
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

export type EventOutcome = 'handled' | 'duplicate' | 'dead_lettered';

/** Counts an event's outcome (and its handling time when `startedAt` is given). */
export function eventOutcome(group: string, topic: string, type: string, outcome: EventOutcome, startedAt?: number): void {
  eventsHandled.inc({ group, topic, type, outcome });
  if (startedAt !== undefined) eventHandlingDuration.observe({ group, type }, (performance.now() - startedAt) / 1000);
  trace.getActiveSpan()?.setAttributes({ 'crm.event.type': type, 'crm.event.outcome': outcome });
}

export function eventRetried(group: string, type: string): void {
  eventRetries.inc({ group, type });
}

export function eventDeadLettered(group: string, topic: string): void {
  deadLetters.inc({ group, topic });
}

/** A saga reached a final status (called once, by the saga read model). */
export function sagaFinished(sagaType: string, status: string, seconds: number): void {
  sagasFinished.inc({ saga_type: sagaType, status });
  sagaDuration.observe({ saga_type: sagaType, status }, Math.max(0, seconds));
}

// ---------------------------------------------------------------- sampled at scrape time

/** The subgraph's outbox backlog and the age of its oldest unsent row; returns the unregister function. */
export function watchOutbox(service: string, orm: MikroORM): () => void {
  const query = async () => {
    const [row] = await orm.em
      .fork()
      .execute<{ n: number; age: number | string }[]>(
        'SELECT count(*)::int AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL',
      );
    return { n: Number(row?.n ?? 0), age: Number(row?.age ?? 0) };
  };
  const offs = [outboxBacklog.add(async (g) => g.set({ service }, (await query()).n)), outboxOldestAge.add(async (g) => g.set({ service }, (await query()).age))];
  return () => offs.forEach((off) => off());
}

/** Lag of `group` on `topics` per partition (Kafka: high watermark − committed offset; memory bus: unread messages). */
export function watchConsumerLag(bus: EventBus, group: string, topics: string[]): () => void {
  return consumerLag.add(async (gauge) => {
    const lags = bus.kind === 'memory' ? (bus as MemoryBus).lag(group, topics) : await (bus as KafkaBus | PostgresBus).lag(group, topics);
    for (const { topic, partition, lag } of lags) gauge.set({ group, topic, partition: String(partition) }, lag);
  });
}

// ---------------------------------------------------------------- live subscriptions (gateway)

/** One event's payload resolved and pushed to a group of subscribers, in a span of the event's trace. */
export function traceDelivery<T>(field: string, subscribers: number, deliver: () => Promise<T>): Promise<T> {
  return withSpan(`deliver ${field}`, { attributes: { 'graphql.subscription.field': field, 'crm.subscribers': subscribers } }, deliver);
}

/** A payload queued to one subscriber (`ok`) or dropped; latency from the event's occurredAt. */
export function subscriptionDelivered(field: string, occurredAt: string, ok: boolean): void {
  if (!ok) {
    wsDropped.inc({ field });
    return;
  }
  wsDeliveries.inc({ field });
  const at = Date.parse(occurredAt);
  if (Number.isFinite(at)) eventToDelivery.observe({ field }, Math.max(0, Date.now() - at) / 1000);
}
