import DataLoader from 'dataloader';
import { z } from 'zod';
import type { EntityManager } from '@mikro-orm/postgresql';
import { badInput, notFound } from '@crm/errors';
import { byIdLoader, groupLoader, paginate } from '@crm/database';
import { parseInput, requireRole, requireUser, scalarResolvers, type Identity, type RequestContext, type Role } from '@crm/runtime';
import { Notification, Saga, SagaStep } from '../entities';
import { isUuid } from '../notify';
import { approvalStats, cacheFor, cachedReport, customerStats, eventMetrics, salesSummary, taskCompletion } from '../reports';

export interface AnalyticsLoaders {
  /** The caller's own, not archived nor deleted, notifications by id (others' are null). */
  notification: DataLoader<string, Notification | null>;
  saga: DataLoader<string, Saga | null>;
  sagaSteps: DataLoader<string, SagaStep[]>;
}

export function createLoaders(em: EntityManager, identity: Identity | null): AnalyticsLoaders {
  return {
    notification: byIdLoader(em, Notification, { recipientId: identity?.userId ?? '00000000-0000-0000-0000-000000000000', archivedAt: null, deletedAt: null }),
    saga: byIdLoader(em, Saga),
    sagaSteps: groupLoader(
      (ids: readonly string[]) => em.find(SagaStep, { sagaId: { $in: [...ids] } }, { orderBy: { at: 'asc', name: 'asc', status: 'asc' } }),
      (s) => s.sagaId,
    ),
  };
}

type Ctx = RequestContext<AnalyticsLoaders>;

/** Who may read reports and sagas. */
const READERS: Role[] = ['ADMIN', 'MANAGER', 'COMPLIANCE'];

const dateArg = z.coerce.date();
const window = z.object({ from: dateArg.nullish(), to: dateArg.nullish() }).refine((w) => !w.from || !w.to || w.from <= w.to, { message: 'must not be before from', path: ['to'] });
const requiredWindow = z.object({ from: dateArg, to: dateArg }).refine((w) => w.from <= w.to, { message: 'must not be before from', path: ['to'] });
const taskArgs = z
  .object({
    from: dateArg.nullish(),
    to: dateArg.nullish(),
    assigneeId: z.string().trim().min(1).max(100).nullish(),
  })
  .refine((w) => !w.from || !w.to || w.from <= w.to, { message: 'must not be before from', path: ['to'] });

const livePositionsArgs = z
  .object({
    after: z.string().max(100).nullish(),
    afterSeq: z
      .string()
      .regex(/^\d{1,18}$/, 'must be a seq this query returned')
      .nullish(),
    first: z.number().int().min(1).max(500),
  })
  .refine((a) => (a.after != null) !== (a.afterSeq != null), { message: 'give exactly one of after and afterSeq', path: ['after'] });

const isoOrNull = (d: Date | null | undefined) => (d ? d.toISOString() : null);

export const resolvers = {
  ...scalarResolvers,
  Query: {
    notification: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(id) ? ctx.loaders.notification.load(id) : null;
    },
    myNotifications: async (_: unknown, args: { unreadOnly?: boolean | null; first?: number | null; after?: string | null }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const where: Record<string, unknown> = { recipientId: me.userId, archivedAt: null, deletedAt: null };
      if (args.unreadOnly) where.readAt = null;
      return paginate(ctx.em, Notification, where, args);
    },
    liveNotificationPositions: async (_: unknown, args: { after?: string | null; afterSeq?: string | null; first: number }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const a = parseInput(livePositionsArgs, args);
      let from: string;
      if (a.after != null) {
        const [row] = isUuid(a.after)
          ? await ctx.em.getConnection().execute<{ seq: string }[]>(
              // archived and deleted ones too (e.g. about a deleted customer, or deleted by the user): the client
              // received it, so it may resume after it
              'SELECT seq::text AS seq FROM notifications WHERE id = ? AND recipient_id = ?',
              [a.after, me.userId],
            )
          : [];
        // Someone else's and an unknown id answer alike: no one learns which ids exist.
        if (!row)
          throw badInput(
            `after: ${a.after.slice(0, 64)} is not one of your notifications (resume with the id of a notification you received, or subscribe without after)`,
            'after',
          );
        from = row.seq;
      } else {
        from = a.afterSeq!;
      }
      return ctx.em.getConnection().execute<{ id: string; seq: string }[]>(
        // ordered by the bigint column (not the text alias of the same name)
        'SELECT n.id, n.seq::text AS seq FROM notifications n WHERE n.recipient_id = ? AND n.archived_at IS NULL AND n.deleted_at IS NULL AND n.seq > ?::bigint ORDER BY n.seq LIMIT ?',
        [me.userId, from, a.first],
      );
    },
    unreadNotificationCount: async (_: unknown, __: unknown, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      return ctx.em.count(Notification, { recipientId: me.userId, archivedAt: null, deletedAt: null, readAt: null });
    },
    salesSummary: async (_: unknown, args: { from: unknown; to: unknown }, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      const w = parseInput(requiredWindow, args);
      return cachedReport(
        ctx.em,
        cacheFor(ctx.config, ctx.logger),
        'salesSummary',
        ['customers', 'meetings', 'tasks', 'approvals'],
        { from: w.from.toISOString(), to: w.to.toISOString() },
        () => salesSummary(ctx.em, w.from, w.to),
      );
    },
    customerStats: async (_: unknown, __: unknown, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      return cachedReport(ctx.em, cacheFor(ctx.config, ctx.logger), 'customerStats', ['customers'], {}, () => customerStats(ctx.em));
    },
    approvalStats: async (_: unknown, args: { from?: unknown; to?: unknown }, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      const w = parseInput(window, args);
      return cachedReport(ctx.em, cacheFor(ctx.config, ctx.logger), 'approvalStats', ['approvals'], { from: isoOrNull(w.from), to: isoOrNull(w.to) }, () =>
        approvalStats(ctx.em, w.from ?? null, w.to ?? null),
      );
    },
    taskCompletionRate: async (_: unknown, args: { from?: unknown; to?: unknown; assigneeId?: unknown }, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      const w = parseInput(taskArgs, args);
      return cachedReport(
        ctx.em,
        cacheFor(ctx.config, ctx.logger),
        'taskCompletionRate',
        ['tasks'],
        { from: isoOrNull(w.from), to: isoOrNull(w.to), assigneeId: w.assigneeId ?? null },
        () => taskCompletion(ctx.em, w.from ?? null, w.to ?? null, w.assigneeId ?? null),
      );
    },
    eventMetrics: async (_: unknown, __: unknown, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      return eventMetrics(ctx.em);
    },
    saga: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireRole(ctx.identity, ...READERS);
      return ctx.loaders.saga.load(id);
    },
  },
  Mutation: {
    markNotificationRead: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const n = isUuid(id) ? await ctx.em.findOne(Notification, { id, recipientId: me.userId, archivedAt: null, deletedAt: null }) : null;
      if (!n) throw notFound('Notification', id);
      if (!n.readAt) {
        n.readAt = new Date();
        await ctx.em.flush();
      }
      return n;
    },
    markAllNotificationsRead: async (_: unknown, __: unknown, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      return ctx.em.nativeUpdate(Notification, { recipientId: me.userId, archivedAt: null, deletedAt: null, readAt: null }, { readAt: new Date() });
    },
    deleteNotification: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      // Someone else's, an archived one, one deleted already and an unknown id are alike: NOT_FOUND, nothing deleted.
      // A soft delete: gone from every read, list and count of the user, but its row (and `seq`) stays so
      // the id still works as notificationAdded(after:) — a client's last received id may be this one.
      const deleted = isUuid(id) ? await ctx.em.nativeUpdate(Notification, { id, recipientId: me.userId, archivedAt: null, deletedAt: null }, { deletedAt: new Date() }) : 0;
      if (deleted !== 1) throw notFound('Notification', id);
      return id;
    },
  },
  Notification: {
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(ref.id) ? ctx.loaders.notification.load(ref.id) : null;
    },
    recipient: (n: Notification) => ({ __typename: 'User', id: n.recipientId }),
  },
  Saga: {
    /**
     * The owner of a saga id (auth's deleteUser, customer's deleteCustomer) returns `{ id }` before
     * any step has reached this read model: a known-valid id then resolves to a RUNNING saga with
     * no steps (type "unknown", subjectId "" until the first event arrives). Readers only.
     */
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      if (!ctx.identity || !READERS.includes(ctx.identity.role)) return null;
      const saga = await ctx.loaders.saga.load(ref.id);
      if (saga) return saga;
      return ctx.em.create(Saga, { id: ref.id, type: 'unknown', subjectId: '', status: 'RUNNING', startedAt: new Date() }, { persist: false });
    },
    steps: (saga: Saga, _: unknown, ctx: Ctx) => ctx.loaders.sagaSteps.load(saga.id),
    missingSteps: async (saga: Saga, _: unknown, ctx: Ctx) => {
      if (!saga.expectedSteps) return [];
      const done = new Set((await ctx.loaders.sagaSteps.load(saga.id)).filter((s) => s.status === 'DONE').map((s) => s.name));
      return saga.expectedSteps.filter((name) => !done.has(name));
    },
  },
};
