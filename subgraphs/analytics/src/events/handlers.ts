/**
 * Analytics consumes every event type of the catalogue. Each handler runs in the consumer's
 * transaction (inbox + effects commit together) and writes only through its `em`:
 *  - event_metrics: one count per event type, for every event;
 *  - projections (customer/meeting/task/approval facts) for the reports, and a bump of the
 *    report_versions row of each changed projection in the same transaction (the report cache
 *    keys include those versions, so a committed change is never hidden by a cached result);
 *  - user_refs (the user directory, to find managers);
 *  - notifications (one per recipient and source event) and the saga read model.
 * Our own analytics.saga_step is applied directly in the transaction that emits it; consuming it
 * back (notification.events) re-applies it, which is a no-op (all writes are upserts).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import {
  EVENTS,
  isEvent,
  roundsByKey,
  type BatchHandler,
  type Envelope,
  type EventData,
  type EventHandler,
  type EventHandlers,
  type EventType,
  type HandlerContext,
  type SagaStepData,
} from '@crm/events';
import { isUuid, managers, notificationCreated, notify, notifyAll, type NewNotification } from '../notify';
import { applySagaStep, upsertSaga } from '../sagas';

export type Projection = 'customers' | 'meetings' | 'tasks' | 'approvals';

/** Bumps a projection's report version once per consumed batch (a hot row: one update, at the end of the transaction). */
function bump(ctx: { beforeCommit: HandlerContext<EventType>['beforeCommit'] }, name: Projection): void {
  ctx.beforeCommit(`bump:${name}`, async (em: EntityManager) => {
    await em.execute('UPDATE report_versions SET version = version + 1 WHERE name = ?', [name]);
  });
}

const at = (ctx: { event: { occurredAt: string } }) => new Date(ctx.event.occurredAt);

/**
 * The condition of every copy's upsert: only a newer aggregate version (the owner's, stamped by its
 * outbox) changes a row, so a redelivered or replayed older event changes nothing. Events without
 * a version (written before versions existed) still apply.
 */
const newer = (table: string) => `EXCLUDED.version IS NULL OR ${table}.version IS NULL OR ${table}.version < EXCLUDED.version`;

// ---------------------------------------------------------------- users

async function upsertUser(ctx: HandlerContext<'user.created' | 'user.updated' | 'user.deleted'>, active: boolean) {
  const d = ctx.event.data;
  await ctx.em.execute(
    `INSERT INTO user_refs (id, name, role, active, updated_at, version) VALUES (?, ?, ?, ?, ?, ?::bigint)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, active = EXCLUDED.active AND user_refs.active,
       updated_at = EXCLUDED.updated_at, version = COALESCE(EXCLUDED.version, user_refs.version)
     WHERE ${newer('user_refs')}`,
    [d.userId, d.name, d.role, active && d.active, at(ctx), ctx.event.aggregateVersion ?? null],
  );
}

// ---------------------------------------------------------------- customers

type CustomerType = 'customer.created' | 'customer.updated' | 'customer.deleted' | 'customer.restored' | 'customer.reassigned';
type CustomerCtx = HandlerContext<CustomerType>;

/**
 * Upserts customer facts with ONE statement (distinct customers: see `roundsByKey`); `deleted`
 * null keeps the stored flag. Only a newer version of the customer (the owner's aggregate
 * version) changes the facts.
 */
async function upsertCustomerFacts(em: EntityManager, events: Envelope<CustomerType>[], deleted: boolean | null) {
  if (events.length === 0) return;
  await em.execute(
    `INSERT INTO customer_facts (id, size, investment_profile, assigned_rep_id, deleted, created_at, version) VALUES ${events.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
     ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, investment_profile = EXCLUDED.investment_profile,
       assigned_rep_id = EXCLUDED.assigned_rep_id, deleted = ${deleted === null ? 'customer_facts.deleted' : 'EXCLUDED.deleted'},
       version = COALESCE(EXCLUDED.version, customer_facts.version)
     WHERE EXCLUDED.version IS NULL OR customer_facts.version IS NULL OR customer_facts.version < EXCLUDED.version`,
    events.flatMap((e) => [e.data.customerId, e.data.size, e.data.investmentProfile, e.data.assignedRepId, deleted ?? false, new Date(e.occurredAt), e.aggregateVersion ?? null]),
  );
}

async function upsertCustomer(ctx: CustomerCtx, deleted: boolean | null) {
  await upsertCustomerFacts(ctx.em, [ctx.event], deleted);
  bump(ctx, 'customers');
}

/** The CUSTOMER_ASSIGNED notification an event gives the customer's new rep, if any. */
function assignedNotice(event: Envelope<'customer.created' | 'customer.reassigned'>): NewNotification | null {
  const d = event.data;
  const repId = d.assignedRepId;
  if (!repId || (event.type === 'customer.reassigned' && repId === (d as EventData<'customer.reassigned'>).fromRepId)) return null;
  return {
    recipientId: repId,
    type: 'CUSTOMER_ASSIGNED',
    title: `Customer assigned to you: ${d.name}`,
    body: null,
    entityType: 'Customer',
    entityId: d.customerId,
    sourceEventId: event.id,
  };
}

/**
 * The customer copies (created, updated, reassigned, restored) of a run of events: per round (each
 * customer once, in order) one multi-row upsert per kind of `deleted` change; the new reps'
 * notifications with one insert; one report-version bump for the batch.
 */
const customerFacts: BatchHandler<'customer.created' | 'customer.updated' | 'customer.reassigned' | 'customer.restored'> = {
  async applyBatch(events, ctx) {
    for (const round of roundsByKey(events, (e) => e.data.customerId)) {
      await upsertCustomerFacts(
        ctx.em,
        round.filter((e) => e.type === 'customer.created' || e.type === 'customer.restored'),
        false,
      );
      await upsertCustomerFacts(
        ctx.em,
        round.filter((e) => e.type === 'customer.updated' || e.type === 'customer.reassigned'),
        null,
      );
    }
    bump(ctx, 'customers');
    const notices = events.flatMap((e) => (isEvent(e, 'customer.created') || isEvent(e, 'customer.reassigned') ? [assignedNotice(e)] : [])).filter((n) => n !== null);
    for (const n of await notifyAll(ctx.em, notices)) {
      ctx.emit(
        events.find((e) => e.id === n.sourceEventId)!,
        'notification.created',
        n.id,
        notificationCreated(n),
      );
    }
    for (const e of events) {
      if (isEvent(e, 'customer.reassigned') && !e.data.assignedRepId && e.data.fromRepId) {
        await customerUnassigned({ ...ctx, event: e, emit: (type, id, data) => ctx.emit(e, type, id, data) });
      }
    }
  },
};

/** No approved rep could take a departing rep's customer: every MANAGER and ADMIN is told. */
async function customerUnassigned(ctx: Pick<HandlerContext<'customer.reassigned'>, 'event' | 'em' | 'emit'>) {
  const d = ctx.event.data;
  for (const recipientId of await managers(ctx.em, null)) {
    await notify(ctx.em, ctx.emit, {
      recipientId,
      type: 'SYSTEM',
      title: `Customer left unassigned: ${d.name}`,
      body: 'Its rep left and no approved SALES rep was available; assign it (approveUser makes a rep eligible).',
      entityType: 'Customer',
      entityId: d.customerId,
      sourceEventId: ctx.event.id,
    });
  }
}

// ---------------------------------------------------------------- meetings

/**
 * A meeting's facts as created, last updated or deleted, applied only from a newer version of the
 * meeting (a redelivered or replayed older event changes nothing). A deleted meeting's row stays as
 * a tombstone (deleted, with the deletion's version) so that an older meeting.created/updated
 * arriving after it cannot bring it back; meetingsHeld does not count it.
 */
async function upsertMeeting(ctx: HandlerContext<'meeting.created' | 'meeting.updated' | 'meeting.deleted'>, deleted = false) {
  const d = ctx.event.data;
  await ctx.em.execute(
    `INSERT INTO meeting_facts (id, customer_id, rep_id, starts_at, created_at, version, deleted) VALUES (?, ?, ?, ?, ?, ?::bigint, ?)
     ON CONFLICT (id) DO UPDATE SET starts_at = EXCLUDED.starts_at, deleted = EXCLUDED.deleted, version = COALESCE(EXCLUDED.version, meeting_facts.version)
     WHERE ${newer('meeting_facts')}`,
    [d.meetingId, d.customerId, d.repId, new Date(d.startsAt), at(ctx), ctx.event.aggregateVersion ?? null, deleted],
  );
  bump(ctx, 'meetings');
}

// ---------------------------------------------------------------- customer-deletion saga

export const ARCHIVE_STEP = 'analytics.archive-notifications';

/**
 * customer-deletion step: archive the live notifications about the customer (its own, its tasks',
 * its approval requests'), remembering the saga; step analytics.archive-notifications DONE, applied
 * to the read model in this transaction (as on user.deleted).
 */
async function archiveCustomerNotifications(ctx: HandlerContext<'customer.deleted'>) {
  const d = ctx.event.data;
  // A replayed deletion older than what the facts already hold (e.g. after customer.restored) archives nothing.
  const version = ctx.event.aggregateVersion ?? null;
  if (version !== null) {
    const [facts] = await ctx.em.execute<{ version: string | number | null }[]>('SELECT version FROM customer_facts WHERE id = ?', [d.customerId]);
    if (facts?.version !== null && facts?.version !== undefined && Number(facts.version) > version) return;
  }
  const archived = await ctx.em.execute<{ id: string }[]>(
    'UPDATE notifications SET archived_at = ?, archived_by_saga = ? WHERE customer_id = ? AND archived_at IS NULL AND deleted_at IS NULL RETURNING id',
    [at(ctx), d.sagaId, d.customerId],
  );
  const step: SagaStepData = {
    sagaId: d.sagaId,
    sagaType: 'customer-deletion',
    subjectId: d.customerId,
    step: ARCHIVE_STEP,
    status: 'DONE',
    detail: `${archived.length} notifications archived`,
    ends: null,
  };
  const envelope = ctx.emit('analytics.saga_step', d.sagaId, step);
  await applySagaStep(ctx.em, envelope, step);
}

/**
 * customer-deletion compensation (customer.restored): the notifications that saga archived come
 * back — except those of users deleted since (their notifications stay archived).
 */
const customerRestored: BatchHandler<'customer.restored'> = {
  async applyBatch(events, ctx) {
    await customerFacts.applyBatch(events, ctx);
    for (const e of events) {
      const restored = await ctx.em.execute<{ id: string }[]>(
        `UPDATE notifications n SET archived_at = NULL, archived_by_saga = NULL
         WHERE n.archived_by_saga = ? AND n.customer_id = ?
           AND NOT EXISTS (SELECT 1 FROM user_refs u WHERE u.id = n.recipient_id::text AND NOT u.active)
         RETURNING n.id`,
        [e.data.sagaId, e.data.customerId],
      );
      const step: SagaStepData = {
        sagaId: e.data.sagaId,
        sagaType: 'customer-deletion',
        subjectId: e.data.customerId,
        step: 'analytics.restore-notifications',
        status: 'COMPENSATED',
        detail: `${restored.length} notifications restored`,
        ends: null,
      };
      const envelope = ctx.emit(e, 'analytics.saga_step', e.data.sagaId, step);
      await applySagaStep(ctx.em, envelope, step);
    }
  },
};

// ---------------------------------------------------------------- tasks

type FactType = 'task.created' | 'task.updated' | 'task.completed' | 'task.cancelled';

/**
 * The task facts of a run of task events: per round (each task once, in order) one multi-row
 * upsert; the assignees' TASK_ASSIGNED notifications (a task someone else gave them) with one
 * insert; one report-version bump for the batch.
 */
const taskFacts: BatchHandler<FactType> = {
  async applyBatch(events, ctx) {
    for (const round of roundsByKey(events, (e) => e.data.taskId)) {
      await ctx.em.execute(
        `INSERT INTO task_facts (id, assignee_id, status, created_at, completed_at, version) VALUES ${round.map(() => '(?, ?, ?, ?, ?, ?::bigint)').join(', ')}
         ON CONFLICT (id) DO UPDATE SET assignee_id = EXCLUDED.assignee_id, status = EXCLUDED.status,
           completed_at = CASE WHEN EXCLUDED.status = 'COMPLETED' THEN COALESCE(EXCLUDED.completed_at, task_facts.completed_at) ELSE NULL END,
           version = COALESCE(EXCLUDED.version, task_facts.version)
         WHERE ${newer('task_facts')}`,
        round.flatMap((e) => {
          const completedAt = isEvent(e, 'task.completed') ? new Date(e.data.completedAt) : new Date(e.occurredAt);
          return [e.data.taskId, e.data.assigneeId, e.data.status, new Date(e.occurredAt), e.data.status === 'COMPLETED' ? completedAt : null, e.aggregateVersion ?? null];
        }),
      );
    }
    bump(ctx, 'tasks');
    const notices = events
      .filter((e) => e.type === 'task.created' && e.data.assigneeId !== e.actorId)
      .map((e): NewNotification => ({
        recipientId: e.data.assigneeId,
        type: 'TASK_ASSIGNED',
        title: `New task for you: ${e.data.title}`,
        body: e.data.dueAt ? `Due ${e.data.dueAt}` : null,
        entityType: 'Task',
        entityId: e.data.taskId,
        customerId: e.data.customerId,
        sourceEventId: e.id,
      }));
    for (const n of await notifyAll(ctx.em, notices)) {
      ctx.emit(
        events.find((e) => e.id === n.sourceEventId)!,
        'notification.created',
        n.id,
        notificationCreated(n),
      );
    }
  },
};

// ---------------------------------------------------------------- approvals

type ApprovalCtx = HandlerContext<'approval.requested' | 'approval.updated' | 'approval.approved' | 'approval.rejected' | 'approval.recalled' | 'approval.cancelled'>;

async function upsertApproval(ctx: ApprovalCtx) {
  const d = ctx.event.data;
  const decided = d.status === 'PENDING' ? null : d.decidedAt ? new Date(d.decidedAt) : at(ctx);
  await ctx.em.execute(
    `INSERT INTO approval_facts (id, requester_id, status, amount, requested_at, decided_at, version) VALUES (?, ?, ?, ?, ?, ?, ?::bigint)
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, amount = EXCLUDED.amount,
       requested_at = EXCLUDED.requested_at, decided_at = EXCLUDED.decided_at, version = COALESCE(EXCLUDED.version, approval_facts.version)
     WHERE ${newer('approval_facts')}`,
    [d.requestId, d.requesterId, d.status, d.amount, new Date(d.requestedAt), decided, ctx.event.aggregateVersion ?? null],
  );
  bump(ctx, 'approvals');
}

async function approvalDecided(ctx: HandlerContext<'approval.approved' | 'approval.rejected'>) {
  await upsertApproval(ctx);
  const d = ctx.event.data;
  const verdict = ctx.event.type === 'approval.approved' ? 'approved' : 'rejected';
  await notify(ctx.em, ctx.emit, {
    recipientId: d.requesterId,
    type: 'APPROVAL_DECIDED',
    title: `Your request "${d.title}" was ${verdict}`,
    body: d.comment,
    entityType: 'ApprovalRequest',
    entityId: d.requestId,
    customerId: d.customerId,
    sourceEventId: ctx.event.id,
  });
}

// ---------------------------------------------------------------- sagas

type StepCtx = HandlerContext<'user.saga_step' | 'customer.saga_step' | 'sales-activity.saga_step' | 'opportunity.saga_step' | 'analytics.saga_step'>;

async function sagaStep(ctx: StepCtx) {
  const step = ctx.event.data;
  await applySagaStep(ctx.em, ctx.event, step);
  if (step.status === 'REFUSED' && step.sagaType === 'customer-deletion') {
    // Remember the refusal: if customer.deleted (with requestedBy) has not arrived yet, its
    // handler sends the notification; else we send it now. Same source event either way.
    const rows = await ctx.em.execute<{ requested_by: string | null; refused_event_id: string; refused_detail: string | null; subject_id: string }[]>(
      `UPDATE sagas SET refused_event_id = COALESCE(refused_event_id, ?), refused_detail = COALESCE(refused_detail, ?)
       WHERE id = ? RETURNING requested_by, refused_event_id, refused_detail, subject_id`,
      [ctx.event.id, step.detail, step.sagaId],
    );
    const saga = rows[0];
    if (saga?.requested_by) await deletionRefused(ctx, saga.requested_by, saga);
  }
}

async function deletionRefused(ctx: HandlerContext<EventType>, recipientId: string, saga: { refused_event_id: string; refused_detail: string | null; subject_id: string }) {
  await notify(ctx.em, ctx.emit, {
    recipientId,
    type: 'SYSTEM',
    title: 'Customer deletion refused; the customer was restored',
    body: saga.refused_detail,
    entityType: 'Customer',
    entityId: saga.subject_id,
    customerId: null, // news of the deletion itself: never archived with the customer's notifications
    sourceEventId: saga.refused_event_id,
  });
}

// ---------------------------------------------------------------- the handlers

const specific: EventHandlers = {
  'user.created': (ctx) => upsertUser(ctx, true),
  'user.updated': (ctx) => upsertUser(ctx, true),
  'user.deleted': async (ctx) => {
    await upsertUser(ctx, false);
    const d = ctx.event.data;
    const archived = isUuid(d.userId)
      ? await ctx.em.execute<{ id: string }[]>('UPDATE notifications SET archived_at = ? WHERE recipient_id = ? AND archived_at IS NULL RETURNING id', [at(ctx), d.userId])
      : [];
    await upsertSaga(ctx.em, { id: d.sagaId, type: 'user-deletion', subjectId: d.userId, at: at(ctx) });
    const step: SagaStepData = {
      sagaId: d.sagaId,
      sagaType: 'user-deletion',
      subjectId: d.userId,
      step: 'analytics.archive-notifications',
      status: 'DONE',
      detail: `${archived.length} notifications archived`,
      ends: null,
    };
    const envelope = ctx.emit('analytics.saga_step', d.sagaId, step);
    await applySagaStep(ctx.em, envelope, step);
  },

  'customer.created': customerFacts,
  'customer.updated': customerFacts,
  'customer.restored': customerRestored,
  'customer.reassigned': customerFacts,
  'customer.deleted': async (ctx) => {
    await upsertCustomer(ctx, true);
    await archiveCustomerNotifications(ctx);
    const d = ctx.event.data;
    const requestedBy = d.requestedBy ?? ctx.event.actorId;
    const saga = await upsertSaga(ctx.em, { id: d.sagaId, type: 'customer-deletion', subjectId: d.customerId, at: at(ctx), requestedBy });
    if (saga.refused_event_id && requestedBy) {
      await deletionRefused(ctx, requestedBy, { ...saga, refused_event_id: saga.refused_event_id });
    }
  },

  'meeting.created': (ctx) => upsertMeeting(ctx, false),
  'meeting.updated': (ctx) => upsertMeeting(ctx, false),
  'meeting.deleted': (ctx) => upsertMeeting(ctx, true),

  'task.created': taskFacts,
  'task.updated': taskFacts,
  'task.completed': taskFacts,
  'task.cancelled': taskFacts,
  'task.due_soon': async (ctx) => {
    const d = ctx.event.data;
    await notify(ctx.em, ctx.emit, {
      recipientId: d.assigneeId,
      type: 'TASK_DUE_SOON',
      title: `Task due soon: ${d.title}`,
      body: `Due ${d.dueAt}`,
      entityType: 'Task',
      entityId: d.taskId,
      customerId: d.customerId,
      sourceEventId: ctx.event.id,
    });
  },

  'approval.updated': upsertApproval,
  'approval.requested': async (ctx) => {
    await upsertApproval(ctx);
    const d = ctx.event.data;
    const amount = d.amount === null ? '' : ` (${d.amount})`;
    for (const recipientId of await managers(ctx.em, d.requesterId)) {
      await notify(ctx.em, ctx.emit, {
        recipientId,
        type: 'APPROVAL_REQUESTED',
        title: `Approval requested: ${d.title}${amount}`,
        body: null,
        entityType: 'ApprovalRequest',
        entityId: d.requestId,
        customerId: d.customerId,
        sourceEventId: ctx.event.id,
      });
    }
  },
  'approval.approved': approvalDecided,
  'approval.rejected': approvalDecided,
  'approval.recalled': upsertApproval,
  'approval.cancelled': upsertApproval,

  'user.saga_step': sagaStep,
  'customer.saga_step': sagaStep,
  'sales-activity.saga_step': sagaStep,
  'opportunity.saga_step': sagaStep,
  'analytics.saga_step': sagaStep,
};

/** The counts of a batch not yet written, per batch (its `beforeCommit`, one per transaction attempt). */
const pendingCounts = new WeakMap<HandlerContext<EventType>['beforeCommit'], Map<string, { n: number; last: Date }>>();

/**
 * Counts events per type: once per batch, at the end of its transaction, with one statement whose
 * rows go in type order. The event_metrics rows are hot (every batch of every partition updates
 * them), so they are locked last: a batch that still waits for a lock (a recipient's, notify.ts)
 * holds none of them, and two batches lock them in the same order. Counted after each event
 * instead, a batch held `task.due_soon`'s row while it waited for a recipient that another batch
 * held while it counted the same type: "deadlock detected", the batch retried.
 */
function countEvents(ctx: { beforeCommit: HandlerContext<EventType>['beforeCommit'] }, events: Envelope[]) {
  let byType = pendingCounts.get(ctx.beforeCommit);
  if (!byType) {
    const counts = (byType = new Map<string, { n: number; last: Date }>());
    pendingCounts.set(ctx.beforeCommit, counts);
    ctx.beforeCommit('metrics', async (em: EntityManager) => {
      const types = [...counts.keys()].sort();
      await em.execute(
        `INSERT INTO event_metrics (type, count, last_at) VALUES ${types.map(() => '(?, ?, ?)').join(', ')}
         ON CONFLICT (type) DO UPDATE SET count = event_metrics.count + EXCLUDED.count, last_at = GREATEST(event_metrics.last_at, EXCLUDED.last_at)`,
        types.flatMap((type) => [type, counts.get(type)!.n, counts.get(type)!.last]),
      );
    });
  }
  for (const e of events) {
    const c = byType.get(e.type) ?? { n: 0, last: new Date(e.occurredAt) };
    c.n += 1;
    if (new Date(e.occurredAt) > c.last) c.last = new Date(e.occurredAt);
    byType.set(e.type, c);
  }
}

/** Event types with no effect here but the metric: a run of them is one count statement. */
const countOnly: BatchHandler<EventType> = { applyBatch: async () => undefined };

const counted = new Map<BatchHandler<EventType>, BatchHandler<EventType>>();
/** The same batch handler for every type it serves (a run spans them), then the metric. */
function withCount(own: BatchHandler<EventType>): BatchHandler<EventType> {
  let wrapped = counted.get(own);
  if (!wrapped) {
    wrapped = {
      async applyBatch(events, ctx) {
        await own.applyBatch(events, ctx);
        countEvents(ctx, events);
      },
    };
    counted.set(own, wrapped);
  }
  return wrapped;
}

/** A handler for every event type of the catalogue: its specific effect, then the metric. */
export const handlers: EventHandlers = Object.fromEntries(
  (Object.keys(EVENTS) as EventType[]).map((type) => {
    const own = (specific[type] ?? countOnly) as EventHandler<EventType>;
    if (typeof own !== 'function') return [type, withCount(own)];
    return [
      type,
      async (ctx: HandlerContext<EventType>) => {
        await own(ctx);
        countEvents(ctx, [ctx.event]);
      },
    ];
  }),
) as EventHandlers;

export { isUuid };
