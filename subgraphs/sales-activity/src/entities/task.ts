import { EntitySchema } from '@mikro-orm/postgresql';

export const TASK_STATUSES = ['TODO', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TASK_PRIORITIES = ['LOW', 'MEDIUM', 'HIGH', 'URGENT'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];
export const OPEN_STATUSES: TaskStatus[] = ['TODO', 'IN_PROGRESS'];

export class Task {
  id!: string;
  title!: string;
  description: string | null = null;
  status: TaskStatus = 'TODO';
  priority: TaskPriority = 'MEDIUM';
  dueAt: Date | null = null;
  completedAt: Date | null = null;
  customerId: string | null = null;
  assigneeId!: string;
  createdById: string | null = null;
  /** The due date a task.due_soon was last emitted for (one event per task per due date). */
  dueSoonFor: Date | null = null;
  /** Set by a customer-deletion saga: hidden from every read until that saga restores it. */
  removedBySaga: string | null = null;
  /** Optimistic lock: every update is `WHERE version = <read version>`, so concurrent transitions cannot both win. */
  version = 1;
  createdAt: Date = new Date();
  updatedAt: Date = new Date();
}

export const TaskSchema = new EntitySchema<Task>({
  class: Task,
  tableName: 'tasks',
  properties: {
    id: { type: 'uuid', primary: true },
    title: { type: 'text' },
    description: { type: 'text', nullable: true },
    status: { type: 'text' },
    priority: { type: 'text' },
    dueAt: { type: 'datetime', nullable: true, fieldName: 'due_at' },
    completedAt: { type: 'datetime', nullable: true, fieldName: 'completed_at' },
    customerId: { type: 'uuid', nullable: true, fieldName: 'customer_id' },
    assigneeId: { type: 'uuid', fieldName: 'assignee_id' },
    createdById: { type: 'uuid', nullable: true, fieldName: 'created_by_id' },
    dueSoonFor: { type: 'datetime', nullable: true, fieldName: 'due_soon_for' },
    removedBySaga: { type: 'uuid', nullable: true, fieldName: 'removed_by_saga' },
    version: { type: 'integer', version: true },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
  },
});
