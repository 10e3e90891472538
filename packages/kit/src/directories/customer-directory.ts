/**
 * The local customer directory that sales-activity and opportunity keep from customer.* events
 * (no subgraph reads another's tables): validates customerId on writes and scopes SALES access.
 * The table (customer_refs: id, name, assigned_rep_id, deleted, updated_at) is created by each
 * subgraph's own migration.
 */
import { EntitySchema, type EntityManager } from '@mikro-orm/postgresql';
import type { EventData } from '../events/catalogue';
import { notFound } from '../errors';
import type { Identity } from '../identity';
import type { Peers } from '../peers';

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

interface OwnedCustomer {
  id: string;
  name: string;
  size: EventData<'customer.created'>['size'];
  investmentProfile: EventData<'customer.created'>['investmentProfile'];
  assignedRep: { id: string } | null;
  updatedAt: string;
}

/**
 * Asks the customer subgraph (the owner) for `id` and stores its answer in the local directory:
 * the read-through that makes a customer written a moment ago usable here at once. Null when the
 * owner has no live customer with that id.
 */
export async function refreshCustomerRef(em: EntityManager, peers: Peers, id: string): Promise<CustomerRef | null> {
  const c = await peers.entity<OwnedCustomer>('customer', 'Customer', id, 'id name size investmentProfile assignedRep { id } updatedAt');
  if (!c) return null;
  const data = { customerId: c.id, name: c.name, assignedRepId: c.assignedRep?.id ?? null, size: c.size ?? null, investmentProfile: c.investmentProfile ?? null };
  await upsertCustomerRef(em, data, c.updatedAt, false);
  return em.findOne(CustomerRef, { id }, { refresh: true });
}

/**
 * The customer a write names: live, and (for a SALES caller) assigned to them — from the local
 * directory, or, when the directory says otherwise, from the owner (it may just not have caught
 * up). Else NOT_FOUND on `customerId`: the same answer whether it is unknown, deleted or someone
 * else's, so its existence is not revealed.
 */
export async function requireCustomerRef(em: EntityManager, peers: Peers, me: Identity, customerId: string): Promise<CustomerRef> {
  const usable = (ref: CustomerRef | null): ref is CustomerRef =>
    ref !== null && !ref.deleted && (me.role !== 'SALES' || ref.assignedRepId === me.userId);
  const local = await em.findOne(CustomerRef, { id: customerId });
  if (usable(local)) return local;
  const fresh = await refreshCustomerRef(em, peers, customerId);
  if (usable(fresh)) return fresh;
  const err = notFound('Customer', customerId);
  (err.extensions as Record<string, unknown>).field = 'customerId';
  throw err;
}
