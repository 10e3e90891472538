/**
 * Compact projections of other domains' events, the only input of the reports (analytics never
 * reads another subgraph's database). Written by the event handlers with idempotent upserts.
 */
import { p, type InferEntity } from '@mikro-orm/postgresql';
import { defineRow } from '@crm/database';

export const UserRef = defineRow({
  name: 'UserRef',
  tableName: 'user_refs',
  properties: {
    id: p.text().primary(),
    name: p.text(),
    role: p.text(),
    active: p
      .boolean()
      .default(true)
      .onCreate(() => true),
    updatedAt: p
      .datetime()
      .fieldName('updated_at')
      .defaultRaw('now()')
      .onCreate(() => new Date()),
  },
});
export type UserRef = InferEntity<typeof UserRef>;

export const CustomerFact = defineRow({
  name: 'CustomerFact',
  tableName: 'customer_facts',
  properties: {
    id: p.text().primary(),
    size: p.text().nullable(),
    investmentProfile: p.text().nullable().fieldName('investment_profile'),
    assignedRepId: p.text().nullable().fieldName('assigned_rep_id'),
    deleted: p
      .boolean()
      .default(false)
      .onCreate(() => false),
    createdAt: p.datetime().fieldName('created_at'),
  },
});
export type CustomerFact = InferEntity<typeof CustomerFact>;

export const MeetingFact = defineRow({
  name: 'MeetingFact',
  tableName: 'meeting_facts',
  properties: {
    id: p.text().primary(),
    customerId: p.text().nullable().fieldName('customer_id'),
    repId: p.text().nullable().fieldName('rep_id'),
    startsAt: p.datetime().fieldName('starts_at'),
    createdAt: p.datetime().fieldName('created_at'),
  },
});
export type MeetingFact = InferEntity<typeof MeetingFact>;

export const TaskFact = defineRow({
  name: 'TaskFact',
  tableName: 'task_facts',
  properties: {
    id: p.text().primary(),
    assigneeId: p.text().fieldName('assignee_id'),
    status: p.text(),
    createdAt: p.datetime().fieldName('created_at'),
    completedAt: p.datetime().nullable().fieldName('completed_at'),
  },
});
export type TaskFact = InferEntity<typeof TaskFact>;

export const ApprovalFact = defineRow({
  name: 'ApprovalFact',
  tableName: 'approval_facts',
  properties: {
    id: p.text().primary(),
    requesterId: p.text().nullable().fieldName('requester_id'),
    status: p.text(),
    amount: p.double().$type<number>().nullable(),
    requestedAt: p.datetime().fieldName('requested_at'),
    decidedAt: p.datetime().nullable().fieldName('decided_at'),
  },
});
export type ApprovalFact = InferEntity<typeof ApprovalFact>;

/** The column is bigint; the property an integer as before (`columnType` only shapes the schema). */
export const EventMetric = defineRow({
  name: 'EventMetric',
  tableName: 'event_metrics',
  properties: {
    type: p.text().primary(),
    count: p.integer().columnType('bigint').default(0),
    lastAt: p.datetime().nullable().fieldName('last_at'),
  },
});
export type EventMetric = InferEntity<typeof EventMetric>;

export const ReportVersion = defineRow({
  name: 'ReportVersion',
  tableName: 'report_versions',
  properties: {
    name: p.text().primary(),
    version: p.integer().columnType('bigint').default(0),
  },
});
export type ReportVersion = InferEntity<typeof ReportVersion>;
