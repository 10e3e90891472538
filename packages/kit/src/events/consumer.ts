/**
 * The one consumer runner: parse and validate the envelope, then in one transaction record the
 * event id in the inbox and apply the handler — a redelivered event finds its inbox row and
 * changes nothing. Failures are retried with backoff; what still fails, or does not parse,
 * goes to <topic>.dlq with the error and its origin, and the partition moves on.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { PlatformConfig } from '../config';
import { inBackground } from '../db';
import type { Logger } from '../logger';
import type { SubgraphRuntime } from '../subgraph';
import type { DeliveredMessage, EventBus, Subscription } from './bus';
import { EVENTS, InvalidEventError, dlqOf, misrouted, parseEnvelope, type Envelope, type EventData, type EventType } from './catalogue';
import { stageEvent } from './outbox';
import { eventDeadLettered, eventOutcome, eventRetried, traceConsume } from '../telemetry/events';
import { noteCorrelation } from '../telemetry/tracing';

export interface HandlerContext<T extends EventType> {
  event: Envelope<T>;
  em: EntityManager;
  logger: Logger;
  runtime: SubgraphRuntime;
  /** Stages a follow-up event in the same transaction, caused by this one (same correlation id). */
  emit<U extends EventType>(type: U, aggregateId: string, data: EventData<U>): Envelope<U>;
}

export type EventHandlers = { [T in EventType]?: (ctx: HandlerContext<T>) => Promise<void> };

export interface Consumer {
  running(): boolean;
  stop(): Promise<void>;
}

export interface ConsumerOptions {
  name: string;
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  handlers: EventHandlers;
  config: PlatformConfig;
  runtime: SubgraphRuntime;
  maxAttempts?: number;
  baseDelayMs?: number;
}

export const consumerGroup = (name: string) => `crm-${name}`;

export async function startConsumer(options: ConsumerOptions): Promise<Consumer> {
  const { name, orm, bus, logger, handlers, runtime } = options;
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelay = options.baseDelayMs ?? 100;
  const topics = [...new Set(Object.keys(handlers).map((t) => EVENTS[t as EventType].topic))];

  const apply = async (event: Envelope): Promise<'handled' | 'duplicate'> => {
    const handler = handlers[event.type] as ((ctx: HandlerContext<EventType>) => Promise<void>) | undefined;
    if (!handler) return 'handled';
    return orm.em.fork().transactional(async (em) => {
      const inserted = await em.execute<{ event_id: string }[]>(
        'INSERT INTO inbox (consumer, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING event_id',
        [name, event.id],
      );
      if (inserted.length === 0) return 'duplicate';
      await handler({
        event,
        em,
        logger,
        runtime,
        emit: (type, aggregateId, data) =>
          stageEvent(em, name, type, aggregateId, data, { actorId: event.actorId, correlationId: event.correlationId, causationId: event.id }),
      });
      return 'handled';
    });
  };

  const deadLetter = async (message: DeliveredMessage, error: string) => {
    logger.error({ topic: message.topic, partition: message.partition, offset: message.offset, error }, 'event dead-lettered');
    eventDeadLettered(consumerGroup(name), message.topic);
    await bus.publish([
      {
        topic: dlqOf(message.topic),
        key: message.key ?? '',
        value: message.value?.toString() ?? '',
        headers: {
          'x-error': error.slice(0, 2000),
          'x-origin-topic': message.topic,
          'x-origin-partition': String(message.partition),
          'x-origin-offset': message.offset,
          'x-consumer': name,
          ...(message.headers.traceparent ? { traceparent: message.headers.traceparent } : {}),
        },
      },
    ]);
  };

  const handle = async (message: DeliveredMessage): Promise<void> => {
    let event: Envelope;
    try {
      event = parseEnvelope(message.value);
    } catch (err) {
      if (err instanceof InvalidEventError) return deadLetter(message, err.message);
      throw err;
    }
    const wrong = misrouted(event, message.topic);
    if (wrong) return deadLetter(message, wrong);
    if (!handlers[event.type]) return;
    noteCorrelation(event.correlationId);
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await apply(event);
        if (outcome === 'duplicate') logger.debug({ id: event.id, type: event.type }, 'duplicate event skipped');
        eventOutcome(consumerGroup(name), message.topic, event.type, outcome, started);
        return;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        if (attempt >= maxAttempts) {
          eventOutcome(consumerGroup(name), message.topic, event.type, 'dead_lettered', started);
          return deadLetter(message, `${event.type} failed after ${attempt} attempts: ${msg}`);
        }
        eventRetried(consumerGroup(name), event.type);
        logger.warn({ type: event.type, id: event.id, attempt, err: msg }, 'event handler failed; retrying');
        await new Promise((r) => setTimeout(r, baseDelay * 2 ** (attempt - 1)));
      }
    }
  };

  let subscription: Subscription | undefined = await bus.subscribe({
    groupId: consumerGroup(name),
    topics,
    handle: (message) => inBackground(`consumer:${name}`, () => traceConsume(consumerGroup(name), message, () => handle(message))),
  });
  logger.info({ topics, group: consumerGroup(name) }, 'consuming events');
  return {
    running: () => subscription?.active() ?? false,
    async stop() {
      await subscription?.stop();
      subscription = undefined;
    },
  };
}
