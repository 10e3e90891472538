/**
 * What the customer subgraph does on other domains' events: the rep directory (user.*), step 2 of
 * the user-deletion saga (user.deleted → reassign), and the compensation of a refused
 * customer-deletion (opportunity.saga_step REFUSED → restore). Writes only through the handler's em.
 */
import { loadAllForWrite, loadForWrite, roundsByKey, type BatchHandler, type EventHandlers } from '@crm/events';
import { Customer } from '../entities';
import { customerEventData, repFromUser, repLoads, upsertRep, upsertReps } from '../customers';

/** The rep directory from user.created/updated: a run of them with one multi-row upsert per round. */
const repCopies: BatchHandler<'user.created' | 'user.updated'> = {
  async applyBatch(events, { em }) {
    for (const round of roundsByKey(events, (e) => e.data.userId))
      await upsertReps(
        em,
        round.map((e) => ({ ...repFromUser(e.data), version: e.aggregateVersion ?? null })),
      );
  },
};

export const handlers: EventHandlers = {
  'user.created': repCopies,
  'user.updated': repCopies,
  'user.deleted': async ({ event, em, emit }) => {
    const { userId, sagaId } = event.data;
    await upsertRep(em, { ...repFromUser(event.data), active: false, version: event.aggregateVersion ?? null });
    // locked (FOR UPDATE, in one order) so each customer.reassigned snapshot is the row this commit writes
    const owned = await loadAllForWrite(em, Customer, { assignedRepId: userId, deletedAt: null }, { createdAt: 'asc', id: 'asc' });
    // least-loaded first, ties to the oldest rep; re-sorted as customers are handed out one by one
    const candidates = (owned.length > 0 ? await repLoads(em, userId) : []).map((r, rank) => ({ ...r, rank }));
    for (const customer of owned) {
      const target = candidates[0];
      customer.assignedRepId = target?.id ?? null;
      if (target) {
        target.load += 1;
        candidates.sort((a, b) => a.load - b.load || a.rank - b.rank);
      }
      emit('customer.reassigned', customer.id, { ...customerEventData(customer), fromRepId: userId, sagaId });
    }
    const moved = owned.filter((c) => c.assignedRepId !== null).length;
    emit('customer.saga_step', sagaId, {
      sagaId,
      sagaType: 'user-deletion',
      subjectId: userId,
      step: 'customer.reassign-customers',
      status: 'DONE',
      detail: `${moved} customers reassigned${owned.length > moved ? `, ${owned.length - moved} left unassigned (no active, approved SALES rep; managers notified)` : ''}`,
      ends: null,
    });
    await em.flush();
  },
  'opportunity.saga_step': async ({ event, em, emit }) => {
    const step = event.data;
    if (step.status !== 'REFUSED' || step.sagaType !== 'customer-deletion') return;
    const customer = await loadForWrite(em, Customer, { id: step.subjectId, deletedBySaga: step.sagaId });
    if (!customer?.deletedAt) return; // already restored (or never deleted by this saga)
    customer.deletedAt = null;
    customer.deletedBySaga = null;
    emit('customer.restored', customer.id, { ...customerEventData(customer), sagaId: step.sagaId });
    emit('customer.saga_step', step.sagaId, {
      sagaId: step.sagaId,
      sagaType: 'customer-deletion',
      subjectId: customer.id,
      step: 'customer.restore',
      status: 'COMPENSATED',
      detail: step.detail ? `customer restored: ${step.detail}` : 'customer restored',
      ends: null,
    });
    await em.flush();
  },
};
