import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, updatedAtColumn, defineRow } from '@crm/database';

export const APPROVAL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'RECALLED', 'CANCELLED'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** A request for approval: PENDING → APPROVED / REJECTED (decision), RECALLED (requester), CANCELLED (system). */
export const ApprovalRequest = defineRow({
  name: 'ApprovalRequest',
  tableName: 'approval_requests',
  properties: {
    id: p.uuid().primary(),
    customerId: p.uuid().fieldName('customer_id'),
    requesterId: p.uuid().fieldName('requester_id'),
    approverId: p.uuid().nullable().fieldName('approver_id'),
    title: p.text(),
    description: p.text().nullable(),
    amount: p.double().$type<number>().runtimeType('number').nullable(),
    status: p
      .text()
      .$type<ApprovalStatus>()
      .default('PENDING')
      .onCreate((): ApprovalStatus => 'PENDING'),
    decisionComment: p.text().nullable().fieldName('decision_comment'),
    createdAt: createdAtColumn(),
    decidedAt: p.datetime().nullable().fieldName('decided_at'),
    updatedAt: updatedAtColumn(),
    /**
     * Optimistic lock: every flush updates `WHERE id = ? AND version = ?`; of two concurrent
     * decisions on one request the second updates no row and becomes a CONFLICT.
     */
    version: p
      .integer()
      .version()
      .onCreate(() => 1),
  },
});
export type ApprovalRequest = InferEntity<typeof ApprovalRequest>;
