/**
 * Which Kafka topic feeds which Subscription field: declared once, here, as data. The hub, the
 * resolver and the filter read this table; nothing else names a topic or an event type.
 *
 *   field         the Subscription root field (supergraph API schema)
 *   topic, types  the events that fire it
 *   entityIdKey   the key of the event's `data` holding the entity id
 *   entityQuery   a Query root field `(id: ID!)` returning the field's type; the subscriber's
 *                 selection is resolved through it (federated plan, subscriber's identity)
 *   audience      who may receive the event: `seeAll` roles get every event; anyone else only
 *                 events where data[ownerKey] is their user id. The subgraph's own access check on
 *                 entityQuery (null / error = not delivered) is a second, independent filter.
 *   resume        (optional) the field can be resumed: a subscription given `arg` (the id of the last
 *                 entity the client received) is fed from `positionsQuery` of `subgraph` (gateway-internal,
 *                 @inaccessible: "the caller's entities after this one, in order") instead of the
 *                 events themselves, which only wake it (./resume.ts).
 */
import { TOPICS, type EventType } from '@crm/events';
import { type Identity, type Role } from '@crm/runtime';

export interface LiveField {
  field: string;
  topic: string;
  types: readonly EventType[];
  entityIdKey: string;
  entityQuery: string;
  audience: { seeAll?: readonly Role[]; ownerKey: string };
  resume?: { arg: string; subgraph: string; positionsQuery: string };
}

export const LIVE_FIELDS: readonly LiveField[] = [
  {
    field: 'notificationAdded',
    topic: TOPICS.notification,
    types: ['notification.created'],
    entityIdKey: 'notificationId',
    entityQuery: 'notification',
    audience: { ownerKey: 'recipientId' },
    resume: { arg: 'after', subgraph: 'analytics', positionsQuery: 'liveNotificationPositions' },
  },
  {
    field: 'approvalStatusChanged',
    topic: TOPICS.opportunity,
    types: ['approval.requested', 'approval.approved', 'approval.rejected', 'approval.recalled', 'approval.cancelled'],
    entityIdKey: 'requestId',
    entityQuery: 'approvalRequest',
    audience: { seeAll: ['MANAGER', 'ADMIN', 'COMPLIANCE'], ownerKey: 'requesterId' },
  },
];

export const liveField = (name: string): LiveField | undefined => LIVE_FIELDS.find((f) => f.field === name);

export const liveTopics = (fields: readonly LiveField[] = LIVE_FIELDS): string[] => [...new Set(fields.map((f) => f.topic))];

/** The live fields an event of `type` on `topic` fires. */
export const fieldsFor = (topic: string, type: string, fields: readonly LiveField[] = LIVE_FIELDS): LiveField[] =>
  fields.filter((f) => f.topic === topic && (f.types as readonly string[]).includes(type));

export function entityIdOf(field: LiveField, data: unknown): string | undefined {
  const value = (data as Record<string, unknown> | null)?.[field.entityIdKey];
  return typeof value === 'string' && value ? value : undefined;
}

export function mayReceive(field: LiveField, data: unknown, identity: Identity): boolean {
  if (field.audience.seeAll?.includes(identity.role)) return true;
  return (data as Record<string, unknown> | null)?.[field.audience.ownerKey] === identity.userId;
}
