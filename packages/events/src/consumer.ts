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
import { REPLAYS_HEADER, type BatchControl, type BusMessage, type DeliveredMessage, type EventBus, type Subscription } from './bus';
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
  /** A batch smaller than `batchSize` waits this long for more first (SubscribeOptions.lingerMs); 0: at once. */
  lingerMs?: number;
}

export const consumerGroup = (name: string) => `crm-${name}`;

class Stopped extends Error {
  override readonly name = 'Stopped';
}

/** One delivered message and its parsed event. */
interface Item {
  message: DeliveredMessage;
  event: Envelope;
}

/** What the steps of one consumer share: its options resolved, its counters and whether it is stopping. */
interface ConsumerRun {
  name: string;
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  handlers: EventHandlers;
  runtime: EventRuntime;
  maxAttempts: number;
  baseDelay: number;
  maxDelay: number;
  health: ConsumerHealth;
  stopping: boolean;
}

export async function startConsumer(options: ConsumerOptions): Promise<Consumer> {
  const { name, orm, bus, logger, handlers, runtime } = options;
  const run: ConsumerRun = {
    name,
    orm,
    bus,
    logger,
    handlers,
    runtime,
    maxAttempts: options.maxAttempts ?? 5,
    baseDelay: options.baseDelayMs ?? 100,
    maxDelay: options.maxDelayMs ?? 10_000,
    health: { stalled: null, handled: 0, duplicates: 0, ignored: 0, deadLettered: 0 },
    stopping: false,
  };
  const topics = [...new Set(Object.keys(handlers).map((t) => EVENTS[t as EventType].topic))];
  let subscription: Subscription | undefined = await bus.subscribe({
    groupId: consumerGroup(name),
    topics,
    batchSize: options.batchSize ?? 500,
    lingerMs: options.lingerMs ?? 0,
    partitionsConcurrently: options.config.KAFKA_TOPIC_PARTITIONS,
    handleBatch: (messages, control) => inBackground(`consumer:${name}`, () => handleBatch(run, messages, control)),
  });
  logger.info({ topics, group: consumerGroup(name) }, 'consuming events');
  return {
    running: () => subscription?.active() ?? false,
    health: () => ({ ...run.health }),
    async stop() {
      run.stopping = true;
      await subscription?.stop();
      subscription = undefined;
    },
  };
}

/** Waits `ms`, giving up (Stopped) as soon as the consumer stops or the partition is no longer ours. */
async function pause(run: ConsumerRun, ms: number, control: BatchControl): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (run.stopping || !control.active()) throw new Stopped('consumer stopping');
    await new Promise((r) => setTimeout(r, Math.min(1000, until - Date.now())));
  }
}

/** Runs `fn` until it succeeds or fails permanently; infrastructure failures wait and retry. */
async function untilAvailable<T>(run: ConsumerRun, what: string, fn: () => Promise<T>, control: BatchControl): Promise<T> {
  const { health, logger, name } = run;
  const result = await retry(fn, {
    baseDelayMs: run.baseDelay,
    maxDelayMs: run.maxDelay,
    shouldRetry: (err) => isTransient(err),
    wait: (ms) => pause(run, ms, control),
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
}

/** Records the events' ids in the inbox (one multi-row insert); returns the ids seen for the first time. */
async function recordInbox(em: EntityManager, consumer: string, items: Item[]): Promise<Set<string>> {
  const ids = [...new Set(items.map((w) => w.event.id))];
  const inserted = await em.execute<{ event_id: string }[]>(
    `INSERT INTO inbox (consumer, event_id) VALUES ${ids.map(() => '(?, ?)').join(', ')} ON CONFLICT DO NOTHING RETURNING event_id`,
    ids.flatMap((id) => [consumer, id]),
  );
  return new Set(inserted.map((r) => r.event_id));
}

type BeforeCommit = HandlerContext<EventType>['beforeCommit'];

/** One transaction: inbox rows for all, then each new event's handler in order. */
function applyAll(run: ConsumerRun, items: Item[], applied = new Set<string>()): Promise<number> {
  return run.orm.em.fork().transactional(async (em) => {
    applied.clear();
    const fresh = await recordInbox(em, run.name, items);
    const atCommit = new Map<string, (em: EntityManager) => Promise<void>>();
    const beforeCommit: BeforeCommit = (key, fn) => void (atCommit.has(key) || atCommit.set(key, fn));
    let handled = 0;
    for (let i = 0; i < items.length;) {
      const { message, event } = items[i++]!;
      if (!fresh.delete(event.id)) continue; // seen before (or twice in this batch)
      const handler = run.handlers[event.type] as EventHandler<EventType>;
      const started = performance.now();
      const applying = [{ message, event }];
      if (typeof handler === 'function') {
        await applyEvent(run, em, handler, { message, event }, beforeCommit, started);
      } else {
        // the following new events with the same batch handler join the run
        for (; i < items.length && run.handlers[items[i]!.event.type] === handler; i++) if (fresh.delete(items[i]!.event.id)) applying.push(items[i]!);
        await applyRun(run, em, handler, applying, beforeCommit, started);
      }
      // Flush each event's (or run's) writes before the next handler reads (raw SQL does not
      // auto-flush), and forget its entities: the next flush looks at the next event's only.
      await em.flush();
      em.clear();
      for (const w of applying) applied.add(w.event.id);
      handled += applying.length;
    }
    for (const key of [...atCommit.keys()].sort()) await atCommit.get(key)!(em);
    return handled;
  });
}

/** One event through a plain handler, in its own CONSUMER span continuing the producer's trace (telemetry). */
async function applyEvent(
  run: ConsumerRun,
  em: EntityManager,
  handler: (ctx: HandlerContext<EventType>) => Promise<void>,
  { message, event }: Item,
  beforeCommit: BeforeCommit,
  started: number,
): Promise<void> {
  const { name, logger, runtime } = run;
  await traceConsume(consumerGroup(name), message, async () => {
    noteCorrelation(event.correlationId);
    await handler({
      event,
      em,
      logger,
      runtime,
      emit: (type, aggregateId, data) => stageEvent(em, name, type, aggregateId, data, { actorId: event.actorId, correlationId: event.correlationId, causationId: event.id }),
      beforeCommit,
    });
    // (a batch that rolls back and is re-applied one at a time counts its events again)
    eventOutcome(consumerGroup(name), message.topic, event.type, 'handled', started);
  });
}

/** A run of consecutive new events through one BatchHandler; the events it emits are written after it. */
async function applyRun(run: ConsumerRun, em: EntityManager, handler: BatchHandler<EventType>, applying: Item[], beforeCommit: BeforeCommit, started: number): Promise<void> {
  const { name, logger, runtime } = run;
  const emitted: OutboxMessage[] = [];
  await traceConsume(
    consumerGroup(name),
    applying.map((w) => w.message),
    async () => {
      if (applying.length === 1) noteCorrelation(applying[0]!.event.correlationId);
      await handler.applyBatch(
        applying.map((w) => w.event),
        {
          em,
          logger,
          runtime,
          emit: (cause, type, aggregateId, data) => {
            const row = outboxRow(em, name, type, aggregateId, data, { actorId: cause.actorId, correlationId: cause.correlationId, causationId: cause.id });
            emitted.push(row);
            return row.envelope;
          },
          beforeCommit,
        },
      );
      for (const w of applying) eventOutcome(consumerGroup(name), w.message.topic, w.event.type, 'handled', started);
    },
  );
  if (emitted.length > 0) await em.insertMany(OutboxMessage, emitted);
}

/** The dead letter of `message` for <topic>.dlq: its bytes, the error and where it came from. */
function deadLetterOf(message: DeliveredMessage, error: string, consumer: string): BusMessage {
  return {
    topic: dlqOf(message.topic),
    key: message.key ?? '',
    value: message.value?.toString() ?? '',
    headers: {
      'x-error': error.slice(0, 2000),
      'x-origin-topic': message.topic,
      'x-origin-partition': String(message.partition),
      'x-origin-offset': message.offset,
      'x-consumer': consumer,
      // the group a replay goes back to (and only to), and how many replays it already had
      'x-group': consumerGroup(consumer),
      [REPLAYS_HEADER]: message.headers[REPLAYS_HEADER] ?? '0',
      'x-dead-lettered-at': new Date().toISOString(),
      ...(message.headers.traceparent ? { traceparent: message.headers.traceparent } : {}),
    },
  };
}

async function deadLetter(run: ConsumerRun, message: DeliveredMessage, error: string, control: BatchControl): Promise<void> {
  const { name } = run;
  run.logger.error({ consumer: name, topic: message.topic, partition: message.partition, offset: message.offset, error }, 'event dead-lettered');
  eventDeadLettered(consumerGroup(name), message.topic);
  await untilAvailable(run, 'dead-letter', () => run.bus.publish([deadLetterOf(message, error, name)]), control);
  run.health.deadLettered += 1;
}

/** The slow path: one event in its own transaction, permanent failures dead-lettered after maxAttempts. */
async function applyOne(run: ConsumerRun, message: DeliveredMessage, event: Envelope, control: BatchControl): Promise<void> {
  const { name, health } = run;
  const started = performance.now();
  let attempts = 0;
  try {
    const n = await retry(
      (attempt) => {
        attempts = attempt;
        return untilAvailable(run, event.type, () => applyAll(run, [{ message, event }]), control);
      },
      {
        retries: run.maxAttempts - 1,
        baseDelayMs: run.baseDelay,
        maxDelayMs: run.maxDelay,
        shouldRetry: (err) => !(err instanceof Stopped),
        wait: (ms) => pause(run, ms, control),
        onRetry: ({ error, attempt }) => {
          eventRetried(consumerGroup(name), event.type);
          run.logger.warn({ consumer: name, type: event.type, id: event.id, attempt, err: errorText(error) }, 'event handler failed; retrying');
        },
      },
    );
    if (n === 0) health.duplicates += 1;
    health.handled += n;
    if (n === 0) eventOutcome(consumerGroup(name), message.topic, event.type, 'duplicate', started);
  } catch (err) {
    if (err instanceof Stopped) throw err;
    eventOutcome(consumerGroup(name), message.topic, event.type, 'dead_lettered', started);
    return deadLetter(run, message, `${event.type} failed after ${attempts} attempts: ${errorText(err)}`, control);
  }
}

/**
 * The batch's events this consumer handles, parsed. Dead-letters what is misrouted or does not
 * parse; counts event types without a handler here (or unknown to this build) as ignored.
 */
async function eventsToApply(run: ConsumerRun, messages: DeliveredMessage[], control: BatchControl): Promise<Item[]> {
  const work: Item[] = [];
  for (const message of messages) {
    try {
      const event = parseEnvelope(message.value);
      const wrong = misrouted(event, message.topic);
      if (wrong) await deadLetter(run, message, wrong, control);
      else if (run.handlers[event.type]) work.push({ message, event });
      else run.health.ignored += 1;
    } catch (err) {
      if (err instanceof UnknownEventTypeError) {
        run.health.ignored += 1;
        run.logger.debug({ consumer: run.name, type: err.type }, 'event type unknown to this build; ignored');
      } else if (err instanceof Stopped || isTransient(err)) {
        throw err; // stopping, or a dead letter that could not be published yet: the batch comes again
      } else {
        // The record's own fault, never the infrastructure's (nothing is read here): an envelope
        // that does not validate, or bytes that break the parser. Dead-lettered, not redelivered
        // for ever.
        await deadLetter(run, message, err instanceof InvalidEventError ? err.message : `unparseable record: ${errorText(err)}`, control);
      }
    }
  }
  return work;
}

/** A batch from the bus: applied in one transaction, or one event at a time if that fails for a reason of its own. */
async function handleBatch(run: ConsumerRun, messages: DeliveredMessage[], control: BatchControl): Promise<void> {
  const { name, health, logger } = run;
  const work = await eventsToApply(run, messages, control);
  if (work.length === 0) return;
  try {
    const started = performance.now();
    const fresh = new Set<string>();
    const n = await untilAvailable(run, 'batch', () => applyAll(run, work, fresh), control);
    for (const { message, event } of work) if (!fresh.has(event.id)) eventOutcome(consumerGroup(name), message.topic, event.type, 'duplicate', started);
    logger.debug({ consumer: name, events: work.length, handled: n, ms: Math.round(performance.now() - started) }, 'batch applied');
    health.handled += n;
    health.duplicates += work.length - n;
  } catch (err) {
    if (err instanceof Stopped) throw err;
    logger.warn({ consumer: name, events: work.length, err: errorText(err) }, 'batch failed; applying its events one at a time');
    for (const { message, event } of work) await applyOne(run, message, event, control);
  }
}
