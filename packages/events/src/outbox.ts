/**
 * The transactional outbox: an event is a row written by the same flush (so the same
 * transaction) as the state change. The relay publishes rows later; a rollback leaves none.
 */
import { randomUUID } from 'node:crypto';
import { p, type EntityManager, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';
import { outboxTraceparent } from './telemetry';
import { ENVELOPE_VERSION, EVENTS, type Envelope, type EventData, type EventType } from './catalogue';

export const OutboxMessage = defineRow({
  name: 'OutboxMessage',
  tableName: 'outbox',
  properties: {
    id: p.uuid().primary(),
    topic: p.text(),
    key: p.text(),
    type: p.text(),
    envelope: p.json<Envelope>(),
    createdAt: createdAtColumn(),
    sentAt: p.datetime().nullable().fieldName('sent_at'),
    attempts: p
      .integer()
      .default(0)
      .onCreate(() => 0),
    lastError: p.text().nullable().fieldName('last_error'),
    /** W3C traceparent of the span that staged the event (the relay continues that trace). */
    traceparent: p.text().nullable(),
  },
});
export type OutboxMessage = InferEntity<typeof OutboxMessage>;

/** Who caused an event, and in which saga: carried from request or consumed event to the next. */
export interface EventCause {
  actorId: string | null;
  correlationId?: string | undefined;
  causationId?: string | null | undefined;
}

export function buildEnvelope<T extends EventType>(source: string, type: T, aggregateId: string, data: EventData<T>, cause: EventCause): Envelope<T> {
  const id = randomUUID();
  const parsed = EVENTS[type].schema.parse(data) as EventData<T>;
  return {
    id,
    type,
    version: ENVELOPE_VERSION,
    occurredAt: new Date().toISOString(),
    source,
    aggregateId,
    actorId: cause.actorId,
    correlationId: cause.correlationId ?? id,
    causationId: cause.causationId ?? null,
    data: parsed,
  };
}

/** The outbox row of a new event (not yet written): `stageEvent` persists one, a batch handler's emits are inserted together. */
export function outboxRow<T extends EventType>(
  em: EntityManager,
  source: string,
  type: T,
  aggregateId: string,
  data: EventData<T>,
  cause: EventCause,
): OutboxMessage & { envelope: Envelope<T> } {
  const envelope = buildEnvelope(source, type, aggregateId, data, cause);
  const row = em.create(OutboxMessage, { id: envelope.id, topic: EVENTS[type].topic, key: aggregateId, type, envelope, traceparent: outboxTraceparent() }, { persist: false });
  return row as OutboxMessage & { envelope: Envelope<T> };
}

/** Stages an event in the outbox of `em`; it is written by the caller's next flush. */
export function stageEvent<T extends EventType>(em: EntityManager, source: string, type: T, aggregateId: string, data: EventData<T>, cause: EventCause): Envelope<T> {
  const row = outboxRow(em, source, type, aggregateId, data, cause);
  em.persist(row);
  return row.envelope;
}
