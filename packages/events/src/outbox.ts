/**
 * The transactional outbox: an event is a row written by the same flush (so the same
 * transaction) as the state change. The relay publishes rows later; a rollback leaves none.
 */
import { randomUUID } from 'node:crypto';
import { EntitySchema, type EntityManager } from '@mikro-orm/postgresql';
import { outboxTraceparent } from './telemetry';
import { ENVELOPE_VERSION, EVENTS, type Envelope, type EventData, type EventType } from './catalogue';

export class OutboxMessage {
  id!: string;
  topic!: string;
  key!: string;
  type!: string;
  envelope!: Envelope;
  createdAt: Date = new Date();
  sentAt: Date | null = null;
  attempts = 0;
  lastError: string | null = null;
  /** W3C traceparent of the span that staged the event (the relay continues that trace). */
  traceparent: string | null = null;
}

export const OutboxMessageSchema = new EntitySchema<OutboxMessage>({
  class: OutboxMessage,
  tableName: 'outbox',
  properties: {
    id: { type: 'uuid', primary: true },
    topic: { type: 'text' },
    key: { type: 'text' },
    type: { type: 'text' },
    envelope: { type: 'json' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    sentAt: { type: 'datetime', nullable: true, fieldName: 'sent_at' },
    attempts: { type: 'integer' },
    lastError: { type: 'text', nullable: true, fieldName: 'last_error' },
    traceparent: { type: 'text', nullable: true },
  },
});

/** Who caused an event, and in which saga: carried from request or consumed event to the next. */
export interface EventCause {
  actorId: string | null;
  correlationId?: string | undefined;
  causationId?: string | null | undefined;
}

export function buildEnvelope<T extends EventType>(
  source: string,
  type: T,
  aggregateId: string,
  data: EventData<T>,
  cause: EventCause,
): Envelope<T> {
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
export function outboxRow<T extends EventType>(source: string, type: T, aggregateId: string, data: EventData<T>, cause: EventCause): OutboxMessage & { envelope: Envelope<T> } {
  const envelope = buildEnvelope(source, type, aggregateId, data, cause);
  const row = new OutboxMessage();
  row.id = envelope.id;
  row.topic = EVENTS[type].topic;
  row.key = aggregateId;
  row.type = type;
  row.envelope = envelope;
  row.traceparent = outboxTraceparent();
  return row as OutboxMessage & { envelope: Envelope<T> };
}

/** Stages an event in the outbox of `em`; it is written by the caller's next flush. */
export function stageEvent<T extends EventType>(
  em: EntityManager,
  source: string,
  type: T,
  aggregateId: string,
  data: EventData<T>,
  cause: EventCause,
): Envelope<T> {
  const row = outboxRow(source, type, aggregateId, data, cause);
  em.persist(row);
  return row.envelope;
}
