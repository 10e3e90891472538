/**
 * The one consumer runner. Messages come in batches of one partition, in order. A batch is
 * applied in ONE transaction: one multi-row inbox insert records the event ids (a redelivered id
 * finds its row and its handler is skipped), then each new event's handler runs, in order,
 * flushed one after the other. A `BatchHandler` (`applyBatch`) takes a run of consecutive new
 * events at once instead, for multi-row SQL. If the batch fails for a reason of its own, it is
 * retried one event at a time to isolate the failing event.
 *
 * Failures are told apart (./failures.ts): an infrastructure failure (database or broker away)
 * holds the partition — nothing committed, nothing dead-lettered — and is retried with capped
 * backoff for as long as it takes, shown by `health()` and in the logs. Only permanent failures go
 * to <topic>.dlq with the error and their origin: an envelope that does not parse, or an event
 * whose handler still fails after `maxAttempts`. Event types this build has no handler for (or
 * does not know) are skipped and counted.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { PlatformConfig } from '@crm/config';
import { inBackground } from '@crm/database';
import type { Logger } from '@crm/telemetry';
import type { EventRuntime } from './event-runtime';
import { REPLAYS_HEADER, type BatchControl, type DeliveredMessage, type EventBus, type Subscription } from './bus';
import { EVENTS, InvalidEventError, UnknownEventTypeError, dlqOf, misrouted, parseEnvelope, type Envelope, type EventData, type EventType } from './catalogue';
import { errorText, isTransient } from './failures';
import { OutboxMessage, outboxRow, stageEvent } from './outbox';
import { eventDeadLettered, eventOutcome, eventRetried, traceConsume } from './telemetry';
import { noteCorrelation } from '@crm/telemetry';
import { retry } from '@crm/errors';

export interface HandlerContext<T extends EventType> {
  event: Envelope<T>;
  em: EntityManager;
  logger: Logger;
  runtime: EventRuntime;
  /** Stages a follow-up event in the same transaction, caused by this one (same correlation id). */
  emit: <U extends EventType>(type: U, aggregateId: string, data: EventData<U>) => Envelope<U>;
  /**
   * Runs `fn` once at the end of the batch's transaction, however many of its events ask with the
   * same `key` (in key order): e.g. one bump of a hot counter row per batch instead of per event.
   */
  beforeCommit(key: string, fn: (em: EntityManager) => Promise<void>): void;
}

/** The batch's transaction and helpers, for a handler that applies several events at once. */
export interface BatchContext {
  em: EntityManager;
  logger: Logger;
  runtime: EventRuntime;
  /** Stages a follow-up event caused by `cause` (same correlation id), written when the run is applied. */
  emit: <U extends EventType>(cause: Envelope, type: U, aggregateId: string, data: EventData<U>) => Envelope<U>;
  beforeCommit: HandlerContext<EventType>['beforeCommit'];
}

/**
 * A handler that applies a run of events at once (e.g. one multi-row upsert): the consecutive new
 * events of a batch whose types map to this same object, in partition order. It must give the
 * result of applying them one after the other (the same key may come more than once: see
 * `roundsByKey`). A failing run fails the batch, which is then retried one event at a time (runs of
 * one), so a failing event is isolated as with a plain handler.
 */
export interface BatchHandler<T extends EventType> {
  applyBatch(events: Envelope<T>[], ctx: BatchContext): Promise<void>;
}

export type EventHandler<T extends EventType> = ((ctx: HandlerContext<T>) => Promise<void>) | BatchHandler<T>;
export type EventHandlers = { [T in EventType]?: EventHandler<T> };

/**
 * Splits `items` into rounds in which each key appears at most once, in order: round k holds the
 * k-th event of each key. Applying the rounds one after the other, each as one multi-row statement
 * (ON CONFLICT cannot touch a row twice in one statement), gives the one-at-a-time result.
 */
export function roundsByKey<I>(items: I[], key: (item: I) => string): I[][] {
  const seen = new Map<string, number>();
  const rounds: I[][] = [];
  for (const item of items) {
    const k = key(item);
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    (rounds[n] ??= []).push(item);
  }
  return rounds;
}

export interface ConsumerHealth {
  /** Set while an infrastructure failure holds the consumer: since when and the last error. */
  stalled: { since: string; error: string; retries: number } | null;
  handled: number;
  duplicates: number;
  /** Events of types without a handler here (or unknown to this build), skipped. */
  ignored: number;
  deadLettered: number;
}

export interface Consumer {
  running(): boolean;
  health(): ConsumerHealth;
  stop(): Promise<void>;
}

export interface ConsumerOptions {
  name: string;
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  handlers: EventHandlers;
  config: PlatformConfig;
  runtime: EventRuntime;
  /** Attempts for an event whose handler fails for a reason of its own, before the DLQ. */
  maxAttempts?: number;
  baseDelayMs?: number;
  /** Longest pause between retries of an infrastructure failure. */
  maxDelayMs?: number;
  batchSize?: number;
}

export const consumerGroup = (name: string) => `crm-${name}`;

class Stopped extends Error {
  override readonly name = 'Stopped';
}

export async function startConsumer(options: ConsumerOptions): Promise<Consumer> {
  const { name, orm, bus, logger, handlers, runtime } = options;
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelay = options.baseDelayMs ?? 100;
  const maxDelay = options.maxDelayMs ?? 10_000;
  const topics = [...new Set(Object.keys(handlers).map((t) => EVENTS[t as EventType].topic))];
  const health: ConsumerHealth = { stalled: null, handled: 0, duplicates: 0, ignored: 0, deadLettered: 0 };
  let stopping = false;

  const pause = async (ms: number, control: BatchControl) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (stopping || !control.active()) throw new Stopped('consumer stopping');
      await new Promise((r) => setTimeout(r, Math.min(1000, until - Date.now())));
      await control.heartbeat(); // stay in the group while we wait
    }
  };

  /** Runs `fn` until it succeeds or fails permanently; infrastructure failures wait and retry. */
  const untilAvailable = async <T>(what: string, fn: () => Promise<T>, control: BatchControl): Promise<T> => {
    const result = await retry(fn, {
      baseDelayMs: baseDelay,
      maxDelayMs: maxDelay,
      shouldRetry: (err) => isTransient(err),
      wait: (ms) => pause(ms, control),
      onRetry: ({ error, attempt, delayMs }) => {
        health.stalled = { since: health.stalled?.since ?? new Date().toISOString(), error: errorText(error), retries: attempt };
        logger.warn({ consumer: name, what, err: errorText(error), retry: attempt, retryInMs: delayMs }, 'infrastructure failure; holding the partition and retrying');
      },
    });
    if (health.stalled) {
      logger.info({ consumer: name, retries: health.stalled.retries, since: health.stalled.since }, 'consumer recovered');
      health.stalled = null;
    }
    return result;
  };

  /** One transaction: inbox rows for all, then each new event's handler in order. */
  const applyAll = (items: { message: DeliveredMessage; event: Envelope }[], applied = new Set<string>()) =>
    orm.em.fork().transactional(async (em) => {
      applied.clear();
      const ids = [...new Set(items.map((w) => w.event.id))];
      const inserted = await em.execute<{ event_id: string }[]>(
        `INSERT INTO inbox (consumer, event_id) VALUES ${ids.map(() => '(?, ?)').join(', ')} ON CONFLICT DO NOTHING RETURNING event_id`,
        ids.flatMap((id) => [name, id]),
      );
      const fresh = new Set(inserted.map((r) => r.event_id));
      const atCommit = new Map<string, (em: EntityManager) => Promise<void>>();
      const beforeCommit = (key: string, fn: (em: EntityManager) => Promise<void>) => void (atCommit.has(key) || atCommit.set(key, fn));
      let handled = 0;
      for (let i = 0; i < items.length; ) {
        const { message, event } = items[i++]!;
        if (!fresh.delete(event.id)) continue; // seen before (or twice in this batch)
        const handler = handlers[event.type] as EventHandler<EventType>;
        const started = performance.now();
        const run = [{ message, event }];
        if (typeof handler === 'function') {
          // each event in its own CONSUMER span, continuing the producer's trace (telemetry)
          await traceConsume(consumerGroup(name), message, async () => {
            noteCorrelation(event.correlationId);
            await handler({
              event,
              em,
              logger,
              runtime,
              emit: (type, aggregateId, data) =>
                stageEvent(em, name, type, aggregateId, data, { actorId: event.actorId, correlationId: event.correlationId, causationId: event.id }),
              beforeCommit,
            });
            // (a batch that rolls back and is re-applied one at a time counts its events again)
            eventOutcome(consumerGroup(name), message.topic, event.type, 'handled', started);
          });
        } else {
          // the following new events with the same batch handler join the run
          for (; i < items.length && handlers[items[i]!.event.type] === handler; i++) if (fresh.delete(items[i]!.event.id)) run.push(items[i]!);
          const emitted: OutboxMessage[] = [];
          await traceConsume(consumerGroup(name), run.map((w) => w.message), async () => {
            if (run.length === 1) noteCorrelation(event.correlationId);
            await handler.applyBatch(run.map((w) => w.event), {
              em,
              logger,
              runtime,
              emit: (cause, type, aggregateId, data) => {
                const row = outboxRow(name, type, aggregateId, data, { actorId: cause.actorId, correlationId: cause.correlationId, causationId: cause.id });
                emitted.push(row);
                return row.envelope;
              },
              beforeCommit,
            });
            for (const w of run) eventOutcome(consumerGroup(name), w.message.topic, w.event.type, 'handled', started);
          });
          if (emitted.length > 0) await em.insertMany(OutboxMessage, emitted);
        }
        // Flush each event's (or run's) writes before the next handler reads (raw SQL does not
        // auto-flush), and forget its entities: the next flush looks at the next event's only.
        await em.flush();
        em.clear();
        for (const w of run) applied.add(w.event.id);
        handled += run.length;
      }
      for (const key of [...atCommit.keys()].sort()) await atCommit.get(key)!(em);
      return handled;
    });

  const deadLetter = async (message: DeliveredMessage, error: string, control: BatchControl) => {
    logger.error({ consumer: name, topic: message.topic, partition: message.partition, offset: message.offset, error }, 'event dead-lettered');
    eventDeadLettered(consumerGroup(name), message.topic);
    await untilAvailable(
      'dead-letter',
      () =>
        bus.publish([
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
              // the group a replay goes back to (and only to), and how many replays it already had
              'x-group': consumerGroup(name),
              [REPLAYS_HEADER]: message.headers[REPLAYS_HEADER] ?? '0',
              'x-dead-lettered-at': new Date().toISOString(),
              ...(message.headers.traceparent ? { traceparent: message.headers.traceparent } : {}),
            },
          },
        ]),
      control,
    );
    health.deadLettered += 1;
  };

  /** The slow path: one event in its own transaction, permanent failures dead-lettered after maxAttempts. */
  const applyOne = async (message: DeliveredMessage, event: Envelope, control: BatchControl) => {
    const started = performance.now();
    let attempts = 0;
    try {
      const n = await retry(
        (attempt) => {
          attempts = attempt;
          return untilAvailable(event.type, () => applyAll([{ message, event }]), control);
        },
        {
          retries: maxAttempts - 1,
          baseDelayMs: baseDelay,
          maxDelayMs: maxDelay,
          shouldRetry: (err) => !(err instanceof Stopped),
          wait: (ms) => pause(ms, control),
          onRetry: ({ error, attempt }) => {
            eventRetried(consumerGroup(name), event.type);
            logger.warn({ consumer: name, type: event.type, id: event.id, attempt, err: errorText(error) }, 'event handler failed; retrying');
          },
        },
      );
      if (n === 0) health.duplicates += 1;
      health.handled += n;
      if (n === 0) eventOutcome(consumerGroup(name), message.topic, event.type, 'duplicate', started);
    } catch (err) {
      if (err instanceof Stopped) throw err;
      eventOutcome(consumerGroup(name), message.topic, event.type, 'dead_lettered', started);
      return deadLetter(message, `${event.type} failed after ${attempts} attempts: ${errorText(err)}`, control);
    }
  };

  const handleBatch = async (messages: DeliveredMessage[], control: BatchControl): Promise<void> => {
    const work: { message: DeliveredMessage; event: Envelope }[] = [];
    for (const message of messages) {
      try {
        const event = parseEnvelope(message.value);
        const wrong = misrouted(event, message.topic);
        if (wrong) await deadLetter(message, wrong, control);
        else if (handlers[event.type]) work.push({ message, event });
        else health.ignored += 1;
      } catch (err) {
        if (err instanceof UnknownEventTypeError) {
          health.ignored += 1;
          logger.debug({ consumer: name, type: err.type }, 'event type unknown to this build; ignored');
        } else if (err instanceof Stopped || isTransient(err)) {
          throw err; // stopping, or a dead letter that could not be published yet: the batch comes again
        } else {
          // The record's own fault, never the infrastructure's (nothing is read here): an envelope
          // that does not validate, or bytes that break the parser. Dead-lettered, not redelivered
          // for ever.
          await deadLetter(message, err instanceof InvalidEventError ? err.message : `unparseable record: ${errorText(err)}`, control);
        }
      }
    }
    if (work.length === 0) return;
    try {
      const started = performance.now();
      const fresh = new Set<string>();
      const n = await untilAvailable('batch', () => applyAll(work, fresh), control);
      for (const { message, event } of work) if (!fresh.has(event.id)) eventOutcome(consumerGroup(name), message.topic, event.type, 'duplicate', started);
      logger.debug({ consumer: name, events: work.length, handled: n, ms: Math.round(performance.now() - started) }, 'batch applied');
      health.handled += n;
      health.duplicates += work.length - n;
    } catch (err) {
      if (err instanceof Stopped) throw err;
      logger.warn({ consumer: name, events: work.length, err: errorText(err) }, 'batch failed; applying its events one at a time');
      for (const { message, event } of work) await applyOne(message, event, control);
    }
  };

  let subscription: Subscription | undefined = await bus.subscribe({
    groupId: consumerGroup(name),
    topics,
    batchSize: options.batchSize ?? 500,
    partitionsConcurrently: options.config.KAFKA_TOPIC_PARTITIONS,
    handleBatch: (messages, control) => inBackground(`consumer:${name}`, () => handleBatch(messages, control)),
  });
  logger.info({ topics, group: consumerGroup(name) }, 'consuming events');
  return {
    running: () => subscription?.active() ?? false,
    health: () => ({ ...health }),
    async stop() {
      stopping = true;
      await subscription?.stop();
      subscription = undefined;
    },
  };
}
