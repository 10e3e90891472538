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
  const from: TaskStatus = task.status; // (its type is Opt<TaskStatus>, which cannot index a record)
  if (!TRANSITIONS[from].includes(to)) {
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
  const task = taskOf(em, data);
  em.persist(task);
  return task;
}

/** A new task, not yet written (a batch handler inserts several at once). */
export function taskOf(em: EntityManager, data: NewTask): Task {
  return em.create(
    Task,
    {
      id: randomUUID(),
      title: data.title,
      description: data.description ?? null,
      priority: data.priority ?? 'MEDIUM',
      dueAt: data.dueAt ?? null,
      customerId: data.customerId ?? null,
      assigneeId: data.assigneeId,
      createdById: data.createdById,
    },
    { persist: false },
  );
}

export const DAY_MS = 86_400_000;
