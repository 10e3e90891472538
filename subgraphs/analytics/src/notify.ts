/**
 * Notifications from events: one row per (source event, recipient), inserted with ON CONFLICT DO
 * NOTHING so a redelivered or repeated event never notifies twice; each new row stages
 * notification.created in the handler's transaction. Each row gets `seq` (a database sequence) under
 * its recipient's transaction lock: per recipient, `seq` order is commit order — what
 * `notificationAdded(after:)` resumes from (docs/subscriptions.md).
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { EventData, HandlerContext, EventType } from '@crm/events';
import type { NotificationType } from './entities';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string | null | undefined): s is string => typeof s === 'string' && UUID.test(s);

export interface NewNotification {
  recipientId: string;
  type: NotificationType;
  title: string;
  body?: string | null;
  entityType?: string | null;
  entityId?: string | null;
  /** The customer it is about, when known (a customer-deletion saga archives it). */
  customerId?: string | null;
  /** The event it comes from: with recipientId, the idempotency key. */
  sourceEventId: string;
}

type Emit = HandlerContext<EventType>['emit'];

/** Inserts the notification unless it exists; returns its id when it was created now. */
export async function notify(em: EntityManager, emit: Emit, n: NewNotification): Promise<string | null> {
  const [created] = await notifyAll(em, [n]);
  if (!created) return null;
  emit('notification.created', created.id, notificationCreated(created));
  return created.id;
}

/**
 * Inserts the notifications that do not exist yet with one statement; returns those created now
 * (with their ids), for the caller to stage notification.created each.
 */
export async function notifyAll(em: EntityManager, ns: NewNotification[]): Promise<(NewNotification & { id: string })[]> {
  const valid = ns.filter((n) => isUuid(n.recipientId)).map((n) => ({ ...n, id: randomUUID() })); // users are UUIDs; anything else cannot log in to read it
  if (valid.length === 0) return [];
  // One recipient's notifications commit in `seq` order (the resumable live feed reads "after seq N" and must
  // never see N+1 before N): the recipient's lock is held from before `seq` is drawn until the handler's
  // transaction ends.
  await lockRecipients(
    em,
    valid.map((n) => n.recipientId.toLowerCase()),
  );
  // created_at from JS (millisecond precision) so keyset cursors compare exactly
  const now = new Date();
  const rows = await em.execute<{ id: string }[]>(
    `INSERT INTO notifications (id, recipient_id, type, title, body, entity_type, entity_id, customer_id, source_event_id, created_at)
     VALUES ${valid.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
     ON CONFLICT (source_event_id, recipient_id) DO NOTHING RETURNING id`,
    valid.flatMap((n) => [n.id, n.recipientId, n.type, n.title, n.body ?? null, n.entityType ?? null, n.entityId ?? null, customerOf(n), n.sourceEventId, now]),
  );
  const created = new Set(rows.map((r) => r.id));
  return valid.filter((n) => created.has(n.id));
}

/** The recipient locks each transaction holds (a consumer batch: several events, several calls), and the highest. */
const heldLocks = new WeakMap<EntityManager, { ids: Set<string>; highest: string }>();
/** How long a lock taken out of order waits before it gives way (below Postgres' 1 s deadlock timeout). */
const OUT_OF_ORDER_WAIT_MS = 200;

/**
 * Takes the recipients' locks for the rest of the transaction, in one order (sorted ids), so two
 * transactions never wait on each other in a cycle. A consumer batch calls this once per event, so a
 * later event may need a recipient that sorts before one it already holds: that lock waits at most
 * OUT_OF_ORDER_WAIT_MS, then fails with a lock timeout (55P03, a transient failure: the consumer rolls
 * the batch back and retries it), and the transaction that took its locks in order goes on. Before,
 * both waited until Postgres found the cycle after its deadlock timeout and aborted one of them.
 */
async function lockRecipients(em: EntityManager, recipientIds: string[]): Promise<void> {
  let held = heldLocks.get(em);
  if (!held) heldLocks.set(em, (held = { ids: new Set(), highest: '' }));
  for (const id of [...new Set(recipientIds)].sort()) {
    if (held.ids.has(id)) continue;
    if (id > held.highest) {
      await em.execute(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, [`notifications:${id}`]);
      held.highest = id;
    } else {
      const [setting] = await em.execute<{ previous: string }[]>(`SELECT current_setting('lock_timeout') AS previous, set_config('lock_timeout', ?, true)`, [
        `${OUT_OF_ORDER_WAIT_MS}ms`,
      ]);
      await em.execute(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, [`notifications:${id}`]);
      await em.execute(`SELECT set_config('lock_timeout', ?, true)`, [setting!.previous]);
    }
    held.ids.add(id);
  }
}

/** The customer a notification is about: as given (null: none), else its entity when that is a customer. */
const customerOf = (n: NewNotification): string | null => (n.customerId !== undefined ? n.customerId : n.entityType === 'Customer' ? (n.entityId ?? null) : null);

/** The notification.created event data of a notification created now. */
export function notificationCreated(n: NewNotification & { id: string }): EventData<'notification.created'> {
  return {
    notificationId: n.id,
    recipientId: n.recipientId,
    type: n.type,
    title: n.title,
    entityType: n.entityType ?? null,
    entityId: n.entityId ?? null,
  };
}

/** Active MANAGER and ADMIN users of the local directory (user_refs). */
export async function managers(em: EntityManager, except: string | null): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>(`SELECT id FROM user_refs WHERE active AND role IN ('MANAGER', 'ADMIN') AND id <> ? ORDER BY id`, [except ?? '']);
  return rows.map((r) => r.id);
}
