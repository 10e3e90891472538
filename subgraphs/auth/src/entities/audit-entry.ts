import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

export const AuditEntry = defineRow({
  name: 'AuditEntry',
  tableName: 'audit_entries',
  properties: {
    id: p.uuid().primary(),
    actorId: p.uuid().nullable().fieldName('actor_id'),
    action: p.text(),
    entityType: p.text().fieldName('entity_type'),
    entityId: p.text().nullable().fieldName('entity_id'),
    createdAt: createdAtColumn(),
    details: p.json<Record<string, unknown>>().nullable(),
    /** The domain event this entry came from, if any (unique: one entry per event). */
    eventId: p.uuid().nullable().fieldName('event_id'),
  },
});
export type AuditEntry = InferEntity<typeof AuditEntry>;
