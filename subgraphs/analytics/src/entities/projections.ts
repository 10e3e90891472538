/**
 * Compact projections of other domains' events, the only input of the reports (analytics never
 * reads another subgraph's database). Written by the event handlers with idempotent upserts.
 */
import { EntitySchema } from '@mikro-orm/postgresql';

export class UserRef {
  id!: string;
  name!: string;
  role!: string;
  active = true;
  updatedAt: Date = new Date();
}
export const UserRefSchema = new EntitySchema<UserRef>({
  class: UserRef,
  tableName: 'user_refs',
  properties: {
    id: { type: 'text', primary: true },
    name: { type: 'text' },
    role: { type: 'text' },
    active: { type: 'boolean' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at' },
  },
});

export class CustomerFact {
  id!: string;
  size: string | null = null;
  investmentProfile: string | null = null;
  assignedRepId: string | null = null;
  deleted = false;
  createdAt!: Date;
}
export const CustomerFactSchema = new EntitySchema<CustomerFact>({
  class: CustomerFact,
  tableName: 'customer_facts',
  properties: {
    id: { type: 'text', primary: true },
    size: { type: 'text', nullable: true },
    investmentProfile: { type: 'text', nullable: true, fieldName: 'investment_profile' },
    assignedRepId: { type: 'text', nullable: true, fieldName: 'assigned_rep_id' },
    deleted: { type: 'boolean' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});

export class MeetingFact {
  id!: string;
  customerId: string | null = null;
  repId: string | null = null;
  startsAt!: Date;
  createdAt!: Date;
}
export const MeetingFactSchema = new EntitySchema<MeetingFact>({
  class: MeetingFact,
  tableName: 'meeting_facts',
  properties: {
    id: { type: 'text', primary: true },
    customerId: { type: 'text', nullable: true, fieldName: 'customer_id' },
    repId: { type: 'text', nullable: true, fieldName: 'rep_id' },
    startsAt: { type: 'datetime', fieldName: 'starts_at' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});

export class TaskFact {
  id!: string;
  assigneeId!: string;
  status!: string;
  createdAt!: Date;
  completedAt: Date | null = null;
}
export const TaskFactSchema = new EntitySchema<TaskFact>({
  class: TaskFact,
  tableName: 'task_facts',
  properties: {
    id: { type: 'text', primary: true },
    assigneeId: { type: 'text', fieldName: 'assignee_id' },
    status: { type: 'text' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    completedAt: { type: 'datetime', nullable: true, fieldName: 'completed_at' },
  },
});

export class ApprovalFact {
  id!: string;
  requesterId: string | null = null;
  status!: string;
  amount: number | null = null;
  requestedAt!: Date;
  decidedAt: Date | null = null;
}
export const ApprovalFactSchema = new EntitySchema<ApprovalFact>({
  class: ApprovalFact,
  tableName: 'approval_facts',
  properties: {
    id: { type: 'text', primary: true },
    requesterId: { type: 'text', nullable: true, fieldName: 'requester_id' },
    status: { type: 'text' },
    amount: { type: 'double', nullable: true },
    requestedAt: { type: 'datetime', fieldName: 'requested_at' },
    decidedAt: { type: 'datetime', nullable: true, fieldName: 'decided_at' },
  },
});

export class EventMetric {
  type!: string;
  count!: number;
  lastAt: Date | null = null;
}
export const EventMetricSchema = new EntitySchema<EventMetric>({
  class: EventMetric,
  tableName: 'event_metrics',
  properties: {
    type: { type: 'text', primary: true },
    count: { type: 'integer' },
    lastAt: { type: 'datetime', nullable: true, fieldName: 'last_at' },
  },
});

export class ReportVersion {
  name!: string;
  version!: number;
}
export const ReportVersionSchema = new EntitySchema<ReportVersion>({
  class: ReportVersion,
  tableName: 'report_versions',
  properties: {
    name: { type: 'text', primary: true },
    version: { type: 'integer' },
  },
});
