/**
 * The local customer directory that sales-activity and opportunity keep from customer.* events
 * (no subgraph reads another's tables): validates customerId on writes and scopes SALES access.
 * The table (customer_refs: id, name, assigned_rep_id, deleted, updated_at) is created by each
 * subgraph's own migration.
 */
import { p, type EntityManager, type InferEntity } from '@mikro-orm/postgresql';
import { defineRow } from '@crm/database';
import type { Envelope, EventData } from '@crm/events';
import { roundsByKey, type BatchHandler } from '@crm/events';
import { notFound } from '@crm/errors';
import type { Identity } from '@crm/runtime';
import { ownerFirst, type Peers } from '@crm/runtime';

export const CustomerRef = defineRow({
  name: 'CustomerRef',
  tableName: 'customer_refs',
  properties: {
    id: p.uuid().primary(),
    name: p.text(),
    assignedRepId: p.uuid().nullable().fieldName('assigned_rep_id'),
    deleted: p
      .boolean()
      .default(false)
      .onCreate(() => false),
    updatedAt: p
      .datetime()
      .fieldName('updated_at')
      .defaultRaw('now()')
      .onCreate(() => new Date()),
  },
});
export type CustomerRef = InferEntity<typeof CustomerRef>;

export interface CustomerRefWrite {
  data: EventData<'customer.created'>;
  occurredAt: string;
  version?: number | null;
}

/**
 * Upserts directory rows from events' customer snapshots, with ONE statement (the ids must be
 * distinct: see `roundsByKey`). `deleted` undefined keeps the stored flag. Only a newer aggregate
 * version (the owner's, from its outbox) changes a row; without versions (older events) the later
 * occurredAt wins. So a late redelivery or a replayed dead letter cannot roll the directory back.
 * Resolves the ids whose rows changed (an event older than its row changes nothing).
 */
export async function upsertCustomerRefs(em: EntityManager, writes: CustomerRefWrite[], deleted?: boolean): Promise<Set<string>> {
  if (writes.length === 0) return new Set();
  const applied = await em.execute<{ id: string }[]>(
    `INSERT INTO customer_refs (id, name, assigned_rep_id, deleted, updated_at, version) VALUES ${writes.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, assigned_rep_id = excluded.assigned_rep_id,
       deleted = ${deleted === undefined ? 'customer_refs.deleted' : 'excluded.deleted'}, updated_at = excluded.updated_at,
       version = COALESCE(excluded.version, customer_refs.version)
     WHERE CASE WHEN excluded.version IS NOT NULL AND customer_refs.version IS NOT NULL THEN customer_refs.version < excluded.version
                ELSE customer_refs.updated_at <= excluded.updated_at END
     RETURNING id`,
    writes.flatMap((w) => [w.data.customerId, w.data.name, w.data.assignedRepId, deleted ?? false, w.occurredAt, w.version ?? null]),
  );
  return new Set(applied.map((r) => r.id));
}

/** One directory row (see `upsertCustomerRefs`); resolves false when the event was older than the row. */
export async function upsertCustomerRef(em: EntityManager, data: EventData<'customer.created'>, occurredAt: string, deleted?: boolean, version?: number | null): Promise<boolean> {
  return (await upsertCustomerRefs(em, [{ data, occurredAt, version }], deleted)).size > 0;
}

type CopiedType = 'customer.created' | 'customer.updated' | 'customer.reassigned' | 'customer.restored';
/** What each event type does to the directory's `deleted` flag (undefined: keeps it). */
const DELETED_AFTER: Record<CopiedType, boolean | undefined> = {
  'customer.created': false,
  'customer.updated': undefined,
  'customer.reassigned': undefined,
  'customer.restored': false,
};

/**
 * Applies a run of customer events to the directory as if one after the other: per round (each
 * customer once, in order) one multi-row upsert per kind of `deleted` change. Resolves the ids of
 * the events that changed their row.
 */
export async function copyCustomerEvents(em: EntityManager, events: Envelope<CopiedType>[]): Promise<Set<string>> {
  const applied = new Set<string>();
  for (const round of roundsByKey(events, (e) => e.data.customerId)) {
    for (const deleted of [false, undefined]) {
      const part = round.filter((e) => DELETED_AFTER[e.type] === deleted);
      const changed = await upsertCustomerRefs(
        em,
        part.map((e) => ({ data: e.data, occurredAt: e.occurredAt, version: e.aggregateVersion })),
        deleted,
      );
      for (const e of part) if (changed.has(e.data.customerId)) applied.add(e.id);
    }
  }
  return applied;
}

/** The directory's batch handler for the customer events that only copy the snapshot. */
export const customerCopies: BatchHandler<CopiedType> = {
  applyBatch: async (events, { em }) => void (await copyCustomerEvents(em, events)),
};

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
 * owner has no live customer with that id; undefined when this deployment runs without the owner.
 */
export async function refreshCustomerRef(em: EntityManager, peers: Peers, id: string): Promise<CustomerRef | null | undefined> {
  const c = await peers.entity<OwnedCustomer>('customer', 'Customer', id, 'id name size investmentProfile assignedRep { id } updatedAt');
  if (c === undefined) return undefined;
  if (!c) return null;
  const data = { customerId: c.id, name: c.name, assignedRepId: c.assignedRep?.id ?? null, size: c.size ?? null, investmentProfile: c.investmentProfile ?? null };
  await upsertCustomerRef(em, data, c.updatedAt, false);
  return em.findOne(CustomerRef, { id }, { refresh: true });
}

/**
 * The customer a write names: live, and (for a SALES caller) assigned to them, as the owner says
 * now. The local directory lags the owner both ways: it may not know a customer created a moment
 * ago, and it may still show one deleted or reassigned a moment ago as live and the caller's. So a
 * write asks the owner (and stores its answer); only when the owner cannot be asked does the local
 * directory decide. Else NOT_FOUND on `customerId`: the same answer whether it is unknown, deleted
 * or someone else's, so its existence is not revealed.
 */
export async function requireCustomerRef(em: EntityManager, peers: Peers, me: Identity, customerId: string): Promise<CustomerRef> {
  const usable = (ref: CustomerRef | null): ref is CustomerRef => ref !== null && !ref.deleted && (me.role !== 'SALES' || ref.assignedRepId === me.userId);
  // With the owner down or slow, the copy may miss a deletion or reassignment of the last moments;
  // the customer saga still cleans up after one.
  const current = await ownerFirst(
    () => refreshCustomerRef(em, peers, customerId),
    () => em.findOne(CustomerRef, { id: customerId }),
    usable,
  );
  if (usable(current)) return current;
  const err = notFound('Customer', customerId);
  (err.extensions as Record<string, unknown>).field = 'customerId';
  throw err;
}
