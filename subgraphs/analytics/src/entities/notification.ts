import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

export const NOTIFICATION_TYPES = ['APPROVAL_REQUESTED', 'APPROVAL_DECIDED', 'TASK_ASSIGNED', 'TASK_DUE_SOON', 'CUSTOMER_ASSIGNED', 'SYSTEM'] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/** One notification for one recipient, created from one source event (unique per event and recipient). */
export const Notification = defineRow({
  name: 'Notification',
  tableName: 'notifications',
  properties: {
    id: p.uuid().primary(),
    recipientId: p.uuid().fieldName('recipient_id'),
    type: p.text().$type<NotificationType>(),
    title: p.text(),
    body: p.text().nullable(),
    entityType: p.text().nullable().fieldName('entity_type'),
    entityId: p.text().nullable().fieldName('entity_id'),
    sourceEventId: p.uuid().fieldName('source_event_id'),
    readAt: p.datetime().nullable().fieldName('read_at'),
    /** Set when the recipient is deleted: hidden from every read. */
    archivedAt: p.datetime().nullable().fieldName('archived_at'),
    /** The customer it is about (its entity, or its task's / request's customer), when known. */
    customerId: p.text().nullable().fieldName('customer_id'),
    /** The customer-deletion saga that archived it (its compensation restores it). */
    archivedBySaga: p.uuid().nullable().fieldName('archived_by_saga'),
    /** Set when its recipient deletes it (deleteNotification): hidden from every read; still a resume cursor of the live feed. */
    deletedAt: p.datetime().nullable().fieldName('deleted_at'),
    createdAt: createdAtColumn(),
  },
});
export type Notification = InferEntity<typeof Notification>;
