/**
 * What opportunity does on other domains' events: keep the local customer directory, and the
 * opportunity.cancel-requests step of the customer-deletion and user-deletion sagas. Every write
 * goes through the handler's `em` (the inbox transaction); follow-ups are staged with `emit`.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { customerCopies, upsertCustomerRef } from '@crm/customer-directory';
import { type EventHandlers, type HandlerContext } from '@crm/events';
import { ApprovalRequest, type ApprovalStatus } from '../entities';
import { approvalData } from '../approvals';

export const CANCEL_STEP = 'opportunity.cancel-requests';
const RECENT_APPROVAL_DAYS = 30;

interface RawRequest {
  id: string;
  customer_id: string;
  requester_id: string;
  approver_id: string | null;
  title: string;
  amount: number | string | null;
  status: ApprovalStatus;
  decision_comment: string | null;
  created_at: Date | string;
  decided_at: Date | string | null;
}

/**
 * Cancels the PENDING requests matching `column = id` with one conditional UPDATE (a request
 * decided concurrently is no longer PENDING and stays as it is), staging approval.cancelled each.
 * Lock order, the same as decide/recall (resolvers: loadForWrite): the request rows first (in id
 * order, so two cancellations never cross), then their version counters (the outbox inserts).
 */
async function cancelPending(em: EntityManager, emit: HandlerContext<'user.deleted'>['emit'], column: 'customer_id' | 'requester_id', id: string, reason: string): Promise<number> {
  const rows = await em.execute<RawRequest[]>(
    `UPDATE approval_requests SET status = 'CANCELLED', version = version + 1, updated_at = now()
     WHERE id IN (SELECT id FROM approval_requests WHERE ${column} = ? AND status = 'PENDING' ORDER BY id FOR UPDATE) AND status = 'PENDING'
     RETURNING id, customer_id, requester_id, approver_id, title, amount, status, decision_comment, created_at, decided_at`,
    [id],
  );
  for (const row of rows) {
    const data = approvalData({
      id: row.id,
      customerId: row.customer_id,
      requesterId: row.requester_id,
      approverId: row.approver_id,
      title: row.title,
      amount: row.amount === null ? null : Number(row.amount),
      status: row.status,
      decisionComment: row.decision_comment,
      createdAt: new Date(row.created_at),
      decidedAt: row.decided_at === null ? null : new Date(row.decided_at),
    });
    emit('approval.cancelled', row.id, { ...data, reason });
  }
  return rows.length;
}

const plural = (n: number) => `${n} pending request${n === 1 ? '' : 's'} cancelled`;

export const handlers: EventHandlers = {
  // the directory's copies: a run of them in one multi-row upsert per round
  'customer.created': customerCopies,
  'customer.updated': customerCopies,
  'customer.reassigned': customerCopies,
  'customer.restored': customerCopies,

  /** customer-deletion step 3: refuse if an APPROVED request was decided in the last 30 days, else cancel PENDING ones. */
  'customer.deleted': async ({ event, em, emit }) => {
    const { data } = event;
    // The directory mirrors the owner: the customer is deleted (and restored again by compensation).
    // A replayed deletion older than the directory (e.g. after customer.restored) changes nothing.
    if (!(await upsertCustomerRef(em, data, event.occurredAt, true, event.aggregateVersion))) return;
    const step = {
      sagaId: data.sagaId,
      sagaType: 'customer-deletion' as const,
      subjectId: data.customerId,
      step: CANCEL_STEP,
      ends: null,
    };
    // Measured from the event's time, so a redelivery decides the same way.
    const since = new Date(Date.parse(event.occurredAt) - RECENT_APPROVAL_DAYS * 24 * 3600 * 1000);
    const recent = await em.findOne(
      ApprovalRequest,
      { customerId: data.customerId, status: 'APPROVED', decidedAt: { $gte: since } },
      { orderBy: { decidedAt: 'desc', id: 'desc' } },
    );
    if (recent) {
      emit('opportunity.saga_step', data.sagaId, {
        ...step,
        status: 'REFUSED',
        detail: `approval request ${recent.id} ("${recent.title}") was approved on ${recent.decidedAt?.toISOString()}, within the last ${RECENT_APPROVAL_DAYS} days`,
      });
      return;
    }
    const n = await cancelPending(em, emit, 'customer_id', data.customerId, 'customer deleted');
    emit('opportunity.saga_step', data.sagaId, { ...step, status: 'DONE', detail: plural(n) });
  },

  /** user-deletion step 4: cancel the deleted user's PENDING requests. */
  'user.deleted': async ({ event, em, emit }) => {
    const { data } = event;
    const n = await cancelPending(em, emit, 'requester_id', data.userId, 'requester deleted');
    emit('opportunity.saga_step', data.sagaId, {
      sagaId: data.sagaId,
      sagaType: 'user-deletion',
      subjectId: data.userId,
      step: CANCEL_STEP,
      status: 'DONE',
      detail: plural(n),
      ends: null,
    });
  },
};
