/**
 * The local customer directory that sales-activity and opportunity keep from customer.* events
 * (no subgraph reads another's tables): validates customerId on writes and scopes SALES access.
 * The table (customer_refs: id, name, assigned_rep_id, deleted, updated_at) is created by each
 * subgraph's own migration.
 */
import { EntitySchema, type EntityManager } from '@mikro-orm/postgresql';
import type { EventData } from '../events/catalogue';

export class CustomerRef {
  id!: string;
  name!: string;
  assignedRepId: string | null = null;
  deleted = false;
  updatedAt: Date = new Date();
}

export const CustomerRefSchema = new EntitySchema<CustomerRef>({
  class: CustomerRef,
  tableName: 'customer_refs',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    assignedRepId: { type: 'uuid', nullable: true, fieldName: 'assigned_rep_id' },
    deleted: { type: 'boolean' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at' },
  },
});

/**
 * Upserts a directory row from an event's customer snapshot. `deleted` undefined keeps the stored
 * flag. Only a newer aggregate version (the owner's, from its outbox) changes the row; without
 * versions (older events) the later occurredAt wins. So a late redelivery or a replayed dead
 * letter cannot roll the directory back. Resolves false when the event was older than the row.
 */
export async function upsertCustomerRef(
  em: EntityManager,
  data: EventData<'customer.created'>,
  occurredAt: string,
  deleted?: boolean,
  version?: number | null,
): Promise<boolean> {
  const applied = await em.execute<{ id: string }[]>(
    `INSERT INTO customer_refs (id, name, assigned_rep_id, deleted, updated_at, version) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, assigned_rep_id = excluded.assigned_rep_id,
       deleted = ${deleted === undefined ? 'customer_refs.deleted' : 'excluded.deleted'}, updated_at = excluded.updated_at,
       version = COALESCE(excluded.version, customer_refs.version)
     WHERE CASE WHEN excluded.version IS NOT NULL AND customer_refs.version IS NOT NULL THEN customer_refs.version < excluded.version
                ELSE customer_refs.updated_at <= excluded.updated_at END
     RETURNING id`,
    [data.customerId, data.name, data.assignedRepId, deleted ?? false, occurredAt, version ?? null],
  );
  return applied.length > 0;
}
