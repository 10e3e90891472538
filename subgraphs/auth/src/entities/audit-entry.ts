import { EntitySchema } from '@mikro-orm/postgresql';

export class AuditEntry {
  id!: string;
  actorId: string | null = null;
  action!: string;
  entityType!: string;
  entityId: string | null = null;
  createdAt: Date = new Date();
  details: Record<string, unknown> | null = null;
  /** The domain event this entry came from, if any (unique: one entry per event). */
  eventId: string | null = null;
}

export const AuditEntrySchema = new EntitySchema<AuditEntry>({
  class: AuditEntry,
  tableName: 'audit_entries',
  properties: {
    id: { type: 'uuid', primary: true },
    actorId: { type: 'uuid', nullable: true, fieldName: 'actor_id' },
    action: { type: 'text' },
    entityType: { type: 'text', fieldName: 'entity_type' },
    entityId: { type: 'text', nullable: true, fieldName: 'entity_id' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    details: { type: 'json', nullable: true },
    eventId: { type: 'uuid', nullable: true, fieldName: 'event_id' },
  },
});
