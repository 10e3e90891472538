/**
 * What sales-activity does when other domains change: keep the local customer directory, open
 * onboarding and follow-up tasks, and take its steps in the deletion sagas. Every write goes
 * through the handler's `em` (the inbox transaction); follow-up events through `emit`.
 */
import { copyCustomerEvents, upsertCustomerRef } from '@crm/customer-directory';
import { type BatchHandler, type EventHandlers, type HandlerContext } from '@crm/events';
import { Meeting, OPEN_STATUSES, Task } from '../entities';
import { DAY_MS, newTask, taskEventData, taskOf, transition } from '../domain';

const plusDays = (iso: string, days: number) => new Date(new Date(iso).getTime() + days * DAY_MS);

/**
 * The directory's copies, a run of them with one multi-row upsert per round; and onboarding: a
 * first-contact task for the assigned rep of each new customer (none while unassigned), all
 * inserted at once.
 */
const customerCopies: BatchHandler<'customer.created' | 'customer.updated' | 'customer.reassigned'> = {
  async applyBatch(events, { em, emit }) {
    await copyCustomerEvents(em, events);
    const tasks: Task[] = [];
    for (const event of events) {
      const repId = event.type === 'customer.created' ? event.data.assignedRepId : null;
      if (!repId) continue;
      const task = taskOf(em, {
        title: `First contact: ${event.data.name}`,
        priority: 'HIGH',
        dueAt: plusDays(event.occurredAt, 2),
        customerId: event.data.customerId,
        assigneeId: repId,
        createdById: event.actorId,
      });
      tasks.push(task);
      emit(event, 'task.created', task.id, taskEventData(task));
    }
    if (tasks.length > 0) await em.insertMany(Task, tasks);
  },
};

export const handlers: EventHandlers = {
  'customer.created': customerCopies,
  'customer.updated': customerCopies,
  'customer.reassigned': customerCopies,
  'customer.deleted': async (ctx) => removeCustomerActivities(ctx),
  'customer.restored': async (ctx) => restoreCustomerActivities(ctx),
  'user.deleted': async (ctx) => removeUserActivities(ctx),
  'approval.approved': async ({ event, em, emit }) => {
    const task = newTask(em, {
      title: `Follow up: ${event.data.title}`,
      priority: 'MEDIUM',
      dueAt: plusDays(event.occurredAt, 3),
      customerId: event.data.customerId,
      assigneeId: event.data.requesterId,
      createdById: event.actorId,
    });
    emit('task.created', task.id, taskEventData(task));
  },
};

/** customer-deletion step 2: hide the customer's meetings and tasks, remembering the saga that did it. */
async function removeCustomerActivities({ event, em, emit }: HandlerContext<'customer.deleted'>): Promise<void> {
  const { customerId, sagaId } = event.data;
  // A replayed deletion older than the directory (e.g. after customer.restored) changes nothing.
  if (!(await upsertCustomerRef(em, event.data, event.occurredAt, true, event.aggregateVersion))) return;
  const meetings = await em.execute<{ id: string }[]>('UPDATE meetings SET removed_by_saga = ? WHERE customer_id = ? AND removed_by_saga IS NULL RETURNING id', [
    sagaId,
    customerId,
  ]);
  // version + 1: a transition racing with the removal loses (CONFLICT) instead of changing a hidden task
  const tasks = await em.execute<{ id: string }[]>('UPDATE tasks SET removed_by_saga = ?, version = version + 1 WHERE customer_id = ? AND removed_by_saga IS NULL RETURNING id', [
    sagaId,
    customerId,
  ]);
  emit('sales-activity.saga_step', sagaId, {
    sagaId,
    sagaType: 'customer-deletion',
    subjectId: customerId,
    step: 'sales-activity.remove-activities',
    status: 'DONE',
    detail: `${meetings.length} meetings and ${tasks.length} tasks removed`,
    ends: null,
  });
}

/** customer-deletion compensation: bring back exactly what that saga removed. */
async function restoreCustomerActivities({ event, em, emit }: HandlerContext<'customer.restored'>): Promise<void> {
  const { customerId, sagaId } = event.data;
  if (!(await upsertCustomerRef(em, event.data, event.occurredAt, false, event.aggregateVersion))) return;
  const meetings = await em.execute<{ id: string }[]>('UPDATE meetings SET removed_by_saga = NULL WHERE removed_by_saga = ? AND customer_id = ? RETURNING id', [
    sagaId,
    customerId,
  ]);
  const tasks = await em.execute<{ id: string }[]>('UPDATE tasks SET removed_by_saga = NULL, version = version + 1 WHERE removed_by_saga = ? AND customer_id = ? RETURNING id', [
    sagaId,
    customerId,
  ]);
  emit('sales-activity.saga_step', sagaId, {
    sagaId,
    sagaType: 'customer-deletion',
    subjectId: customerId,
    step: 'sales-activity.restore-activities',
    status: 'COMPENSATED',
    detail: `${meetings.length} meetings and ${tasks.length} tasks restored`,
    ends: 'COMPENSATED',
  });
}

/** user-deletion step 3: cancel the user's open tasks and delete their future meetings. */
async function removeUserActivities({ event, em, emit }: HandlerContext<'user.deleted'>): Promise<void> {
  const { userId, sagaId } = event.data;
  const open = await em.find(Task, { assigneeId: userId, status: { $in: OPEN_STATUSES } }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  for (const task of open) {
    transition(task, 'CANCELLED');
    emit('task.cancelled', task.id, taskEventData(task));
  }
  const meetings = await em.nativeDelete(Meeting, { repId: userId, startsAt: { $gt: new Date(event.occurredAt) } });
  emit('sales-activity.saga_step', sagaId, {
    sagaId,
    sagaType: 'user-deletion',
    subjectId: userId,
    step: 'sales-activity.remove-activities',
    status: 'DONE',
    detail: `${open.length} tasks cancelled, ${meetings} future meetings deleted`,
    ends: null,
  });
}
