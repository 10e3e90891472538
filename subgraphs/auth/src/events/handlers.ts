/**
 * The audit log records the domain events of every subgraph (who did what). Auth's own actions
 * are audited where they happen; here come the others', one entry per event id.
 */
import { EVENTS, type BatchHandler, type EventHandlers, type EventType } from '@crm/events';
import { auditEntry } from '../audit';
import { AuditEntry } from '../entities';

const ENTITY_OF: Record<string, string> = {
  customer: 'Customer',
  meeting: 'Meeting',
  task: 'Task',
  approval: 'ApprovalRequest',
};

/** Event types that are someone's action on a domain entity (not saga bookkeeping or notifications). */
export const AUDITED_TYPES = (Object.keys(EVENTS) as EventType[]).filter((t) => {
  const prefix = t.split('.')[0] ?? '';
  return prefix in ENTITY_OF && !t.endsWith('.saga_step') && t !== 'task.due_soon';
});

/** One audit entry per event; a run of events is inserted with one multi-row statement. */
const audit: BatchHandler<EventType> = {
  async applyBatch(events, { em }) {
    await em.insertMany(
      AuditEntry,
      events.map((event) =>
        auditEntry(em, {
          actorId: event.actorId,
          action: event.type,
          entityType: ENTITY_OF[event.type.split('.')[0] ?? ''] ?? 'Unknown',
          entityId: event.aggregateId,
          details: event.data,
          eventId: event.id,
          at: new Date(event.occurredAt),
        }),
      ),
    );
  },
};

export const auditHandlers: EventHandlers = Object.fromEntries(AUDITED_TYPES.map((t) => [t, audit]));

/**
 * The audit log is read later, by people: its consumer lets a short batch wait this long for more
 * (events SubscribeOptions.lingerMs). Its work then leaves the moment an event is published, when
 * live subscriptions resolve the event through the subgraphs (auth among them) and users wait for
 * them, and a burst of events costs one transaction instead of one each.
 */
export const AUDIT_LINGER_MS = 200;
