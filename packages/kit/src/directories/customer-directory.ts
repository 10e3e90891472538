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
 * flag. An event older than the row (by occurredAt) changes nothing, so a late redelivery cannot
 * roll the directory back.
 */
export async function upsertCustomerRef(
  em: EntityManager,
  data: EventData<'customer.created'>,
  occurredAt: string,
  deleted?: boolean,
): Promise<void> {
  await em.execute(
    `INSERT INTO customer_refs (id, name, assigned_rep_id, deleted, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, assigned_rep_id = excluded.assigned_rep_id,
       deleted = ${deleted === undefined ? 'customer_refs.deleted' : 'excluded.deleted'}, updated_at = excluded.updated_at
     WHERE customer_refs.updated_at <= excluded.updated_at`,
    [data.customerId, data.name, data.assignedRepId, deleted ?? false, occurredAt],
  );
}
