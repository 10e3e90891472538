import type { EventData } from '@crm/events';
import type { ApprovalStatus } from './entities';

/** The fields of a request the approval.* events carry (a row from the ORM or from raw SQL). */
export interface ApprovalLike {
  id: string;
  customerId: string;
  requesterId: string;
  approverId: string | null;
  title: string;
  amount: number | null;
  status: ApprovalStatus;
  decisionComment: string | null;
  createdAt: Date;
  decidedAt: Date | null;
}

/** The catalogue's approval payload, the same for every approval.* event. */
export function approvalData(r: ApprovalLike): EventData<'approval.requested'> {
  return {
    requestId: r.id,
    customerId: r.customerId,
    requesterId: r.requesterId,
    approverId: r.approverId,
    title: r.title,
    amount: r.amount,
    status: r.status,
    comment: r.decisionComment,
    requestedAt: r.createdAt.toISOString(),
    decidedAt: r.decidedAt ? r.decidedAt.toISOString() : null,
  };
}
