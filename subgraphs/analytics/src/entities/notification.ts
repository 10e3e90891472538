import { EntitySchema } from '@mikro-orm/postgresql';

export const NOTIFICATION_TYPES = [
  'APPROVAL_REQUESTED', 'APPROVAL_DECIDED', 'TASK_ASSIGNED', 'TASK_DUE_SOON', 'CUSTOMER_ASSIGNED', 'SYSTEM',
] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/** One notification for one recipient, created from one source event (unique per event and recipient). */
export class Notification {
  id!: string;
  recipientId!: string;
  type!: NotificationType;
  title!: string;
  body: string | null = null;
  entityType: string | null = null;
  entityId: string | null = null;
  sourceEventId!: string;
  readAt: Date | null = null;
  /** Set when the recipient is deleted: hidden from every read. */
  archivedAt: Date | null = null;
  /** The customer it is about (its entity, or its task's / request's customer), when known. */
  customerId: string | null = null;
  /** The customer-deletion saga that archived it (its compensation restores it). */
  archivedBySaga: string | null = null;
  /** Set when its recipient deletes it (deleteNotification): hidden from every read; still a resume cursor of the live feed. */
  deletedAt: Date | null = null;
  createdAt: Date = new Date();
}

export const NotificationSchema = new EntitySchema<Notification>({
  class: Notification,
  tableName: 'notifications',
  properties: {
    id: { type: 'uuid', primary: true },
    recipientId: { type: 'uuid', fieldName: 'recipient_id' },
    type: { type: 'text' },
    title: { type: 'text' },
    body: { type: 'text', nullable: true },
    entityType: { type: 'text', nullable: true, fieldName: 'entity_type' },
    entityId: { type: 'text', nullable: true, fieldName: 'entity_id' },
    sourceEventId: { type: 'uuid', fieldName: 'source_event_id' },
    readAt: { type: 'datetime', nullable: true, fieldName: 'read_at' },
    archivedAt: { type: 'datetime', nullable: true, fieldName: 'archived_at' },
    customerId: { type: 'text', nullable: true, fieldName: 'customer_id' },
    archivedBySaga: { type: 'uuid', nullable: true, fieldName: 'archived_by_saga' },
    deletedAt: { type: 'datetime', nullable: true, fieldName: 'deleted_at' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});
