import { EntitySchema } from '@mikro-orm/postgresql';

export const APPROVAL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'RECALLED', 'CANCELLED'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** A request for approval: PENDING → APPROVED / REJECTED (decision), RECALLED (requester), CANCELLED (system). */
export class ApprovalRequest {
  id!: string;
  customerId!: string;
  requesterId!: string;
  approverId: string | null = null;
  title!: string;
  description: string | null = null;
  amount: number | null = null;
  status: ApprovalStatus = 'PENDING';
  decisionComment: string | null = null;
  createdAt: Date = new Date();
  decidedAt: Date | null = null;
  updatedAt: Date = new Date();
  /**
   * Optimistic lock: every flush updates `WHERE id = ? AND version = ?`; of two concurrent
   * decisions on one request the second updates no row and becomes a CONFLICT.
   */
  version = 1;
}

export const ApprovalRequestSchema = new EntitySchema<ApprovalRequest>({
  class: ApprovalRequest,
  tableName: 'approval_requests',
  properties: {
    id: { type: 'uuid', primary: true },
    customerId: { type: 'uuid', fieldName: 'customer_id' },
    requesterId: { type: 'uuid', fieldName: 'requester_id' },
    approverId: { type: 'uuid', nullable: true, fieldName: 'approver_id' },
    title: { type: 'text' },
    description: { type: 'text', nullable: true },
    amount: { type: 'double', runtimeType: 'number', nullable: true },
    status: { type: 'text' },
    decisionComment: { type: 'text', nullable: true, fieldName: 'decision_comment' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    decidedAt: { type: 'datetime', nullable: true, fieldName: 'decided_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
    version: { type: 'integer', version: true },
  },
});
