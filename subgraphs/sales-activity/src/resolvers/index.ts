import type DataLoader from 'dataloader';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { OptimisticLockError, type EntityManager, type FilterQuery } from '@mikro-orm/postgresql';
import {
  byIdLoader, conflict, connectionLoaders, forbidden, notFound, pageSize, pagesByParent, paginate, parseInput,
  requireCustomerRef, requireUser, requireWriter, scalarResolvers, toConnection, type Connection, type Identity, type PageArgs, type RequestContext,
} from '@crm/kit';
import { Meeting, Task, TASK_PRIORITIES, TASK_STATUSES, type TaskStatus } from '../entities';
import { isOpen, meetingEventData, newTask, taskEventData, transition } from '../domain';
import type { Resolvers } from '../generated/resolvers-types';

type ListArgs = PageArgs & Record<string, unknown> & { status?: TaskStatus | null };

export interface SalesActivityLoaders {
  task: DataLoader<string, Task | null>;
  meeting: DataLoader<string, Meeting | null>;
  customerMeetings: (args: ListArgs) => DataLoader<string, Connection<Meeting>>;
  customerTasks: (args: ListArgs) => DataLoader<string, Connection<Task>>;
  userTasks: (args: ListArgs) => DataLoader<string, Connection<Task>>;
}

/** What a caller may read: SALES only their own tasks / meetings; never what a saga removed. */
export function taskScope(identity: Identity | null): Record<string, unknown> {
  if (!identity || identity.role === 'SALES') return { removedBySaga: null, assigneeId: identity?.userId ?? randomUUID() };
  return { removedBySaga: null };
}
export function meetingScope(identity: Identity | null): Record<string, unknown> {
  if (!identity || identity.role === 'SALES') return { removedBySaga: null, repId: identity?.userId ?? randomUUID() };
  return { removedBySaga: null };
}
const withStatus = (scope: Record<string, unknown>, status: TaskStatus | null | undefined): FilterQuery<Task> =>
  (status ? { ...scope, status } : scope) as FilterQuery<Task>;
const pageArgs = (args: ListArgs): PageArgs => ({ first: args.first ?? null, after: args.after ?? null });

export function createLoaders(em: EntityManager, identity: Identity | null): SalesActivityLoaders {
  const tasks = taskScope(identity);
  const meetings = meetingScope(identity);
  return {
    task: byIdLoader(em, Task, tasks as FilterQuery<Task>),
    meeting: byIdLoader(em, Meeting, meetings as FilterQuery<Meeting>),
    customerMeetings: connectionLoaders<Meeting>((ids, args) =>
      pagesByParent(em, Meeting, 'customerId', ids, meetings as FilterQuery<Meeting>, pageArgs(args))),
    customerTasks: connectionLoaders<Task>((ids, args) =>
      pagesByParent(em, Task, 'customerId', ids, withStatus(tasks, (args as ListArgs).status), pageArgs(args))),
    userTasks: connectionLoaders<Task>((ids, args) =>
      pagesByParent(em, Task, 'assigneeId', ids, withStatus(tasks, (args as ListArgs).status), pageArgs(args))),
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

/** Normalises list args and sorts keys so equal argument sets share one loader. */
function listArgs(args: ListArgs): ListArgs {
  pageSize(args.first);
  return { first: args.first ?? null, after: args.after ?? null, status: args.status ?? null };
}
const emptyPage = <T extends { id: string; createdAt: Date }>(args: PageArgs): Connection<T> => toConnection<T>([], pageSize(args.first), 0);

/** The task as the caller may change it: invisible → NOT_FOUND; closed → CONFLICT. */
async function writableTask(ctx: Ctx, me: Identity, id: string): Promise<Task> {
  const task = isUuid(id) ? await ctx.em.findOne(Task, { $and: [{ id }, taskScope(me)] } as FilterQuery<Task>) : null;
  if (!task) throw notFound('Task', id);
  if (!isOpen(task.status)) throw conflict(`The task is ${task.status} and can no longer be changed`);
  return task;
}

/** Commits; a lost race on the task's version (another transition won) is a CONFLICT, with nothing written. */
async function flushTask(ctx: Ctx): Promise<void> {
  try {
    await ctx.em.flush();
  } catch (err) {
    if (err instanceof OptimisticLockError) throw conflict('The task was changed at the same time by another request; reload it');
    throw err;
  }
}

function stageTaskChange(ctx: Ctx, task: Task, statusChanged: boolean) {
  if (statusChanged && task.status === 'COMPLETED') {
    ctx.emit('task.completed', task.id, { ...taskEventData(task), completedAt: (task.completedAt ?? new Date()).toISOString() });
  } else if (statusChanged && task.status === 'CANCELLED') {
    ctx.emit('task.cancelled', task.id, taskEventData(task));
  } else {
    ctx.emit('task.updated', task.id, taskEventData(task));
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
    myTasks: async (_: unknown, args: ListArgs, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const where = withStatus({ assigneeId: me.userId, removedBySaga: null }, args.status);
      return paginate(ctx.em, Task, where, args);
    },
  },
  Mutation: {
    recordMeeting: async (_: unknown, args: { input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(recordMeetingInput, args.input);
      await requireCustomerRef(ctx.em, ctx.peers, me, input.customerId);
      const meeting = new Meeting();
      meeting.id = randomUUID();
      meeting.customerId = input.customerId;
      meeting.repId = me.userId;
      meeting.startsAt = input.startsAt;
      meeting.summary = input.summary;
      meeting.nextAction = input.nextAction || null;
      ctx.em.persist(meeting);
      ctx.emit('meeting.created', meeting.id, meetingEventData(meeting));
      await ctx.em.flush();
      return meeting;
    },
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
      const task = await writableTask(ctx, me, args.id);
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
      stageTaskChange(ctx, task, statusChanged);
      await flushTask(ctx);
      return task;
    },
    completeTask: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const task = await writableTask(ctx, me, id);
      transition(task, 'COMPLETED');
      stageTaskChange(ctx, task, true);
      await flushTask(ctx);
      return task;
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
    meetings: async (c: { id: string }, args: ListArgs, ctx: Ctx) => {
      requireUser(ctx.identity);
      const a = listArgs(args);
      return isUuid(c.id) ? ctx.loaders.customerMeetings({ first: a.first, after: a.after }).load(c.id) : emptyPage<Meeting>(a);
    },
    tasks: async (c: { id: string }, args: ListArgs, ctx: Ctx) => {
      requireUser(ctx.identity);
      const a = listArgs(args);
      return isUuid(c.id) ? ctx.loaders.customerTasks(a).load(c.id) : emptyPage<Task>(a);
    },
  },
  User: {
    __resolveReference: (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return { id: ref.id };
    },
    tasks: async (u: { id: string }, args: ListArgs, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const a = listArgs(args);
      // SALES see only their own tasks: another user's list is empty (no query at all).
      if (!isUuid(u.id) || (me.role === 'SALES' && u.id !== me.userId)) return emptyPage<Task>(a);
      return ctx.loaders.userTasks(a).load(u.id);
    },
  },
};
