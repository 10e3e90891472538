import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, updatedAtColumn, defineRow } from '@crm/database';

export const TASK_STATUSES = ['TODO', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TASK_PRIORITIES = ['LOW', 'MEDIUM', 'HIGH', 'URGENT'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];
export const OPEN_STATUSES: TaskStatus[] = ['TODO', 'IN_PROGRESS'];

export const Task = defineRow({
  name: 'Task',
  tableName: 'tasks',
  properties: {
    id: p.uuid().primary(),
    title: p.text(),
    description: p.text().nullable(),
    status: p
      .text()
      .$type<TaskStatus>()
      .onCreate((): TaskStatus => 'TODO'),
    priority: p
      .text()
      .$type<TaskPriority>()
      .onCreate((): TaskPriority => 'MEDIUM'),
    dueAt: p.datetime().nullable().fieldName('due_at'),
    completedAt: p.datetime().nullable().fieldName('completed_at'),
    customerId: p.uuid().nullable().fieldName('customer_id'),
    assigneeId: p.uuid().fieldName('assignee_id'),
    createdById: p.uuid().nullable().fieldName('created_by_id'),
    /** The due date a task.due_soon was last emitted for (one event per task per due date). */
    dueSoonFor: p.datetime().nullable().fieldName('due_soon_for'),
    /** Set by a customer-deletion saga: hidden from every read until that saga restores it. */
    removedBySaga: p.uuid().nullable().fieldName('removed_by_saga'),
    /** Optimistic lock: every update is `WHERE version = <read version>`, so concurrent transitions cannot both win. */
    version: p
      .integer()
      .version()
      .onCreate(() => 1),
    createdAt: createdAtColumn(),
    updatedAt: updatedAtColumn(),
  },
});
export type Task = InferEntity<typeof Task>;
