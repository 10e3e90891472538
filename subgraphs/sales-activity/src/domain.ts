/**
 * Task and meeting rules shared by resolvers, event handlers and the due-soon job: the status
 * state machine and event payloads (the customer directory look-up is the kit's requireCustomerRef).
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { conflict } from '@crm/errors';
import { type EventData } from '@crm/events';
import { Meeting, Task, type TaskPriority, type TaskStatus } from './entities';

/**
 * Allowed status moves. TODO → COMPLETED is allowed on purpose (completeTask on a task nobody
 * started is what users expect); the contract's TODO → IN_PROGRESS → COMPLETED is the usual path.
 * COMPLETED and CANCELLED are final.
 */
export const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  TODO: ['IN_PROGRESS', 'COMPLETED', 'CANCELLED'],
  IN_PROGRESS: ['COMPLETED', 'CANCELLED'],
  COMPLETED: [],
  CANCELLED: [],
};

export const isOpen = (status: TaskStatus) => status === 'TODO' || status === 'IN_PROGRESS';

/** Moves `task` to `to` or throws CONFLICT; sets completedAt only on completion. */
export function transition(task: Task, to: TaskStatus, now = new Date()): void {
  if (!TRANSITIONS[task.status].includes(to)) {
    throw conflict(`A ${task.status} task cannot become ${to}`);
  }
  task.status = to;
  if (to === 'COMPLETED') task.completedAt = now;
}

export function taskEventData(task: Task): EventData<'task.created'> {
  return {
    taskId: task.id,
    title: task.title,
    assigneeId: task.assigneeId,
    customerId: task.customerId,
    status: task.status,
    priority: task.priority,
    dueAt: task.dueAt ? task.dueAt.toISOString() : null,
  };
}

export function meetingEventData(m: Meeting): EventData<'meeting.created'> {
  return { meetingId: m.id, customerId: m.customerId, repId: m.repId, startsAt: m.startsAt.toISOString(), summary: m.summary };
}

export interface NewTask {
  title: string;
  description?: string | null;
  priority?: TaskPriority;
  dueAt?: Date | null;
  customerId?: string | null;
  assigneeId: string;
  createdById: string | null;
}

/** Stages a new task in `em`'s unit of work. */
export function newTask(em: EntityManager, data: NewTask): Task {
  const task = taskOf(data);
  em.persist(task);
  return task;
}

/** A new task, not yet written (a batch handler inserts several at once). */
export function taskOf(data: NewTask): Task {
  const task = new Task();
  task.id = randomUUID();
  task.title = data.title;
  task.description = data.description ?? null;
  task.priority = data.priority ?? 'MEDIUM';
  task.dueAt = data.dueAt ?? null;
  task.customerId = data.customerId ?? null;
  task.assigneeId = data.assigneeId;
  task.createdById = data.createdById;
  return task;
}

export const DAY_MS = 86_400_000;
