import type DataLoader from 'dataloader';
import type { GraphQLResolveInfo } from 'graphql';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { OptimisticLockError, type EntityManager, type FilterQuery } from '@mikro-orm/postgresql';
import { badInput, conflict, forbidden, notFound } from '@crm/errors';
import {
  byIdLoader,
  connectionLoaders,
  connectionProps,
  countLoader,
  countsByParent,
  onlyTotalCount,
  pageSize,
  pagesByParent,
  paginate,
  toConnection,
  wantsTotalCount,
  type Connection,
  type PageArgs,
  type PageRequest,
} from '@crm/database';
import { loadForWrite } from '@crm/events';
import { parseInput, requireUser, requireWriter, scalarResolvers, type Identity, type RequestContext, type WriteContext } from '@crm/runtime';
import { requireCustomerRef } from '@crm/customer-directory';
import { Meeting, Task, TASK_PRIORITIES, TASK_STATUSES, type TaskStatus } from '../entities';
import { isOpen, meetingEventData, newTask, taskEventData, transition } from '../domain';
import type { Resolvers } from '../generated/resolvers-types';

/** List arguments, plus the properties the selection needs (lean rows; part of the loader key). */
type ListArgs = PageRequest & Record<string, unknown> & { status?: TaskStatus | null; props?: string[] };

/** Read-only loaders: plain rows (kit lean.ts), never managed entities. */
export interface SalesActivityLoaders {
  task: DataLoader<string, Task | null>;
  meeting: DataLoader<string, Meeting | null>;
  customerMeetings: (args: ListArgs) => DataLoader<string, Connection<Meeting>>;
  customerTasks: (args: ListArgs) => DataLoader<string, Connection<Task>>;
  userTasks: (args: ListArgs) => DataLoader<string, Connection<Task>>;
  /** count(*) per customer, one statement per batch: `meetings { totalCount }` reads no rows. */
  customerMeetingCounts: DataLoader<string, number>;
  customerTaskCounts: (status: TaskStatus | null) => DataLoader<string, number>;
}

/** GraphQL fields that read other columns than their own name. */
const MEETING_NEEDS = { customer: ['customerId'], rep: ['repId'] };
const TASK_NEEDS = { customer: ['customerId'], assignee: ['assigneeId'] };

/** What a caller may read: SALES only their own tasks / meetings; never what a saga removed. */
export function taskScope(identity: Identity | null): Record<string, unknown> {
  if (!identity || identity.role === 'SALES') return { removedBySaga: null, assigneeId: identity?.userId ?? randomUUID() };
  return { removedBySaga: null };
}
export function meetingScope(identity: Identity | null): Record<string, unknown> {
  if (!identity || identity.role === 'SALES') return { removedBySaga: null, repId: identity?.userId ?? randomUUID() };
  return { removedBySaga: null };
}
const withStatus = (scope: Record<string, unknown>, status: TaskStatus | null | undefined): FilterQuery<Task> => (status ? { ...scope, status } : scope) as FilterQuery<Task>;
const pageArgs = (args: ListArgs): PageRequest => ({ first: args.first ?? null, after: args.after ?? null, ...(args.count === false ? { count: false } : {}) });

export function createLoaders(em: EntityManager, identity: Identity | null): SalesActivityLoaders {
  const tasks = taskScope(identity);
  const meetings = meetingScope(identity);
  const taskCounts = new Map<string, DataLoader<string, number>>();
  return {
    task: byIdLoader(em, Task, tasks as FilterQuery<Task>, { lean: true }),
    meeting: byIdLoader(em, Meeting, meetings as FilterQuery<Meeting>, { lean: true }),
    customerMeetings: connectionLoaders<Meeting>((ids, args) =>
      pagesByParent(em, Meeting, 'customerId', ids, meetings as FilterQuery<Meeting>, pageArgs(args), (args as ListArgs).props),
    ),
    customerTasks: connectionLoaders<Task>((ids, args) =>
      pagesByParent(em, Task, 'customerId', ids, withStatus(tasks, (args as ListArgs).status), pageArgs(args), (args as ListArgs).props),
    ),
    userTasks: connectionLoaders<Task>((ids, args) =>
      pagesByParent(em, Task, 'assigneeId', ids, withStatus(tasks, (args as ListArgs).status), pageArgs(args), (args as ListArgs).props),
    ),
    customerMeetingCounts: countLoader((ids) => countsByParent(em, Meeting, 'customerId', ids, meetings)),
    customerTaskCounts(status) {
      const key = status ?? '*';
      let loader = taskCounts.get(key);
      if (!loader) {
        loader = countLoader((ids) => countsByParent(em, Task, 'customerId', ids, withStatus(tasks, status)));
        taskCounts.set(key, loader);
      }
      return loader;
    },
  };
}

type Ctx = RequestContext<SalesActivityLoaders>;

const uuid = z.string().uuid();
const isUuid = (id: string) => uuid.safeParse(id).success;
const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max);
const date = z.date({ message: 'must be a date-time' });

const recordMeetingInput = z.object({
  customerId: z.string().uuid('must be a valid id'),
  startsAt: date,
  summary: text(5000),
  nextAction: z.string().trim().max(2000).nullish(),
});
const updateMeetingInput = z.object({
  startsAt: date.optional(),
  summary: text(5000).optional(),
  nextAction: z.string().trim().max(2000).nullish(),
});

const createTaskInput = z.object({
  title: text(200),
  description: z.string().trim().max(5000).nullish(),
  priority: z.enum(TASK_PRIORITIES).nullish(),
  dueAt: date.nullish(),
  customerId: z.string().uuid('must be a valid id').nullish(),
  assigneeId: z.string().uuid('must be a valid id').nullish(),
});
const updateTaskInput = z.object({
  title: text(200).nullish(),
  description: z.string().trim().max(5000).nullish(),
  priority: z.enum(TASK_PRIORITIES).nullish(),
  dueAt: date.nullish(),
  status: z.enum(TASK_STATUSES).nullish(),
});

/** Normalises list args (plus the selection's properties) so equal argument sets share one loader. */
function listArgs(args: ListArgs, info: GraphQLResolveInfo, props?: string[]): ListArgs {
  pageSize(args.first);
  return { first: args.first ?? null, after: args.after ?? null, status: args.status ?? null, props, count: wantsTotalCount(info) };
}
/** A connection whose selection is only totalCount: no edges are read (onlyTotalCount). */
const countOnly = <T extends { id: string; createdAt: Date }>(a: ListArgs, n: number): Connection<T> => toConnection<T>([], pageSize(a.first), n);
const emptyPage = <T extends { id: string; createdAt: Date }>(args: PageArgs): Connection<T> => toConnection<T>([], pageSize(args.first), 0);

/**
 * Runs `work` on the meeting the caller may change, locked for the write (loadForWrite) in one
 * transaction with its event (RequestContext.write): the meeting's rep, or MANAGER/ADMIN; a meeting
 * the caller cannot see (another rep's, for SALES), removed by a saga, deleted or unknown → NOT_FOUND;
 * COMPLIANCE → FORBIDDEN.
 */
async function withWritableMeeting<T>(ctx: Ctx, id: string, work: (meeting: Meeting, tx: WriteContext) => T | Promise<T>): Promise<T> {
  const me = requireWriter(ctx.identity);
  if (!isUuid(id)) throw notFound('Meeting', id);
  return ctx.write(async (tx) => {
    const meeting = await loadForWrite(tx.em, Meeting, { $and: [{ id }, meetingScope(me)] } as FilterQuery<Meeting>);
    if (!meeting) throw notFound('Meeting', id);
    return work(meeting, tx);
  });
}

/** The task as the caller may change it, locked for the write's transaction `em`: invisible → NOT_FOUND; closed → CONFLICT. */
async function writableTask(em: EntityManager, me: Identity, id: string): Promise<Task> {
  const task = isUuid(id) ? await loadForWrite(em, Task, { $and: [{ id }, taskScope(me)] } as FilterQuery<Task>) : null;
  if (!task) throw notFound('Task', id);
  if (!isOpen(task.status)) throw conflict(`The task is ${task.status} and can no longer be changed`);
  return task;
}

/**
 * A task change in one transaction, the task's row locked (loadForWrite) so its event's snapshot is
 * what commits; a lost race on the task's version (a writer outside this lock) is a CONFLICT, with
 * nothing written.
 */
async function writeTask<R>(ctx: Ctx, fn: (tx: WriteContext) => Promise<R>): Promise<R> {
  try {
    return await ctx.write(fn);
  } catch (err) {
    if (err instanceof OptimisticLockError) throw conflict('The task was changed at the same time by another request; reload it');
    throw err;
  }
}

function stageTaskChange(emit: WriteContext['emit'], task: Task, statusChanged: boolean) {
  if (statusChanged && task.status === 'COMPLETED') {
    emit('task.completed', task.id, { ...taskEventData(task), completedAt: (task.completedAt ?? new Date()).toISOString() });
  } else if (statusChanged && task.status === 'CANCELLED') {
    emit('task.cancelled', task.id, taskEventData(task));
  } else {
    emit('task.updated', task.id, taskEventData(task));
  }
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  Query: {
    task: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(id) ? ctx.loaders.task.load(id) : null;
    },
    meeting: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(id) ? ctx.loaders.meeting.load(id) : null;
    },
    myTasks: async (_: unknown, args: ListArgs, ctx: Ctx, info: GraphQLResolveInfo) => {
      const me = requireUser(ctx.identity);
      const where = withStatus({ assigneeId: me.userId, removedBySaga: null }, args.status);
      return paginate(ctx.em, Task, where, args, { lean: true, props: connectionProps(ctx.em, Task, info, TASK_NEEDS), count: wantsTotalCount(info) });
    },
  },
  Mutation: {
    recordMeeting: async (_: unknown, args: { input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(recordMeetingInput, args.input);
      await requireCustomerRef(ctx.em, ctx.peers, me, input.customerId);
      const meeting = ctx.em.create(Meeting, {
        id: randomUUID(),
        customerId: input.customerId,
        repId: me.userId,
        startsAt: input.startsAt,
        summary: input.summary,
        nextAction: input.nextAction || null,
      });
      ctx.emit('meeting.created', meeting.id, meetingEventData(meeting));
      await ctx.em.flush();
      return meeting;
    },
    updateMeeting: async (_: unknown, args: { id: string; input: unknown }, ctx: Ctx) => {
      requireWriter(ctx.identity);
      const raw = (args.input ?? {}) as Record<string, unknown>;
      if (raw.startsAt === null) throw badInput('startsAt cannot be cleared', 'startsAt');
      if (raw.summary === null) throw badInput('summary cannot be cleared', 'summary');
      const input = parseInput(updateMeetingInput, raw);
      return withWritableMeeting(ctx, args.id, (meeting, { emit }) => {
        const changes: string[] = [];
        if (input.startsAt && input.startsAt.getTime() !== meeting.startsAt.getTime()) {
          meeting.startsAt = input.startsAt;
          changes.push('startsAt');
        }
        if (input.summary && input.summary !== meeting.summary) {
          meeting.summary = input.summary;
          changes.push('summary');
        }
        // An explicit null (or empty text) clears the next action.
        if ('nextAction' in raw && (input.nextAction || null) !== meeting.nextAction) {
          meeting.nextAction = input.nextAction || null;
          changes.push('nextAction');
        }
        if (changes.length > 0) emit('meeting.updated', meeting.id, { ...meetingEventData(meeting), changes });
        return meeting;
      });
    },
    deleteMeeting: async (_: unknown, { id }: { id: string }, ctx: Ctx) =>
      withWritableMeeting(ctx, id, (meeting, { em, emit }) => {
        emit('meeting.deleted', meeting.id, meetingEventData(meeting));
        em.remove(meeting);
        return meeting.id;
      }),
    createTask: async (_: unknown, args: { input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(createTaskInput, args.input);
      const assigneeId = input.assigneeId ?? me.userId;
      if (me.role === 'SALES' && assigneeId !== me.userId) throw forbidden('SALES users may only create tasks for themselves');
      if (input.customerId) await requireCustomerRef(ctx.em, ctx.peers, me, input.customerId);
      const task = newTask(ctx.em, {
        title: input.title,
        description: input.description || null,
        priority: input.priority ?? 'MEDIUM',
        dueAt: input.dueAt ?? null,
        customerId: input.customerId ?? null,
        assigneeId,
        createdById: me.userId,
      });
      ctx.emit('task.created', task.id, taskEventData(task));
      await ctx.em.flush();
      return task;
    },
    updateTask: async (_: unknown, args: { id: string; input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const raw = (args.input ?? {}) as Record<string, unknown>;
      const input = parseInput(updateTaskInput, raw);
      return writeTask(ctx, async ({ em, emit }) => {
        const task = await writableTask(em, me, args.id);
        let changed = false;
        if (input.title && input.title !== task.title) {
          task.title = input.title;
          changed = true;
        }
        if ('description' in raw && (input.description || null) !== task.description) {
          task.description = input.description || null;
          changed = true;
        }
        if (input.priority && input.priority !== task.priority) {
          task.priority = input.priority;
          changed = true;
        }
        // An explicit null clears the due date; a new due date re-arms the due-soon job (due_soon_for ≠ due_at).
        if ('dueAt' in raw && (input.dueAt?.getTime() ?? null) !== (task.dueAt?.getTime() ?? null)) {
          task.dueAt = input.dueAt ?? null;
          changed = true;
        }
        let statusChanged = false;
        if (input.status && input.status !== task.status) {
          transition(task, input.status);
          statusChanged = true;
        }
        if (!changed && !statusChanged) return task;
        stageTaskChange(emit, task, statusChanged);
        return task;
      });
    },
    completeTask: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      return writeTask(ctx, async ({ em, emit }) => {
        const task = await writableTask(em, me, id);
        transition(task, 'COMPLETED');
        stageTaskChange(emit, task, true);
        return task;
      });
    },
  },
  Meeting: {
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(ref.id) ? ctx.loaders.meeting.load(ref.id) : null;
    },
    customer: (m: Meeting) => ({ id: m.customerId }),
    rep: (m: Meeting) => ({ id: m.repId }),
  },
  Task: {
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(ref.id) ? ctx.loaders.task.load(ref.id) : null;
    },
    customer: (t: Task) => (t.customerId ? { id: t.customerId } : null),
    assignee: (t: Task) => ({ id: t.assigneeId }),
  },
  Customer: {
    __resolveReference: (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return { id: ref.id };
    },
    meetings: async (c: { id: string }, args: ListArgs, ctx: Ctx, info: GraphQLResolveInfo) => {
      requireUser(ctx.identity);
      const a = listArgs(args, info, connectionProps(ctx.em, Meeting, info, MEETING_NEEDS));
      if (!isUuid(c.id)) return emptyPage<Meeting>(a);
      if (onlyTotalCount(info)) return countOnly<Meeting>(a, await ctx.loaders.customerMeetingCounts.load(c.id));
      return ctx.loaders.customerMeetings({ first: a.first, after: a.after, props: a.props, count: a.count }).load(c.id);
    },
    tasks: async (c: { id: string }, args: ListArgs, ctx: Ctx, info: GraphQLResolveInfo) => {
      requireUser(ctx.identity);
      const a = listArgs(args, info, connectionProps(ctx.em, Task, info, TASK_NEEDS));
      if (!isUuid(c.id)) return emptyPage<Task>(a);
      if (onlyTotalCount(info)) return countOnly<Task>(a, await ctx.loaders.customerTaskCounts(a.status ?? null).load(c.id));
      return ctx.loaders.customerTasks(a).load(c.id);
    },
  },
  User: {
    __resolveReference: (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return { id: ref.id };
    },
    tasks: async (u: { id: string }, args: ListArgs, ctx: Ctx, info: GraphQLResolveInfo) => {
      const me = requireUser(ctx.identity);
      const a = listArgs(args, info, connectionProps(ctx.em, Task, info, TASK_NEEDS));
      // SALES see only their own tasks: another user's list is empty (no query at all).
      if (!isUuid(u.id) || (me.role === 'SALES' && u.id !== me.userId)) return emptyPage<Task>(a);
      return ctx.loaders.userTasks(a).load(u.id);
    },
  },
};
