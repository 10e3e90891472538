import { randomUUID } from 'node:crypto';
import DataLoader from 'dataloader';
import type { GraphQLResolveInfo } from 'graphql';
import { z } from 'zod';
import { OptimisticLockError, type EntityManager, type FilterQuery } from '@mikro-orm/postgresql';
import { badInput, conflict, forbidden, notFound } from '@crm/errors';
import { byIdLoader, connectionProps, groupLoader, newestByParent, paginate, propsFor, selectedFields, wantsTotalCount } from '@crm/database';
import { loadForWrite } from '@crm/events';
import { parseInput, requireRole, requireUser, requireWriter, scalarResolvers, seesAll, type Identity, type RequestContext, type WriteContext } from '@crm/runtime';
import { requireCustomerRef } from '@crm/customer-directory';
import { APPROVAL_STATUSES, ApprovalRequest, type ApprovalStatus } from '../entities';
import { approvalData } from '../approvals';
import type { Resolvers } from '../generated/resolvers-types';

/** Read-only loaders: plain rows (kit lean.ts), never managed entities. */
export interface OpportunityLoaders {
  /** Requests by id, already scoped to what the caller may see. */
  request: DataLoader<string, ApprovalRequest | null>;
  /** The newest APPROVAL_REQUESTS_PER_CUSTOMER requests of each customer (one statement per batch), scoped, optionally by status; only `props` (+ id, createdAt, customerId). */
  byCustomer(status: ApprovalStatus | null, props?: string[]): DataLoader<string, ApprovalRequest[]>;
}

/** GraphQL fields of ApprovalRequest that read other columns than their own name. */
const REQUEST_NEEDS = { customer: ['customerId'], requester: ['requesterId'], approver: ['approverId'] };
/** The bound of the unpaged Customer.approvalRequests, equal to the gateway's DEFAULT_LIST_SIZE. */
const APPROVAL_REQUESTS_PER_CUSTOMER = 20;

/** SALES see only the requests they made; everyone else (MANAGER, ADMIN, COMPLIANCE) sees all. */
function visibleScope(identity: Identity | null): FilterQuery<ApprovalRequest> {
  if (!identity) return { id: { $in: [] } };
  return seesAll(identity) ? {} : { requesterId: identity.userId };
}

export function createLoaders(em: EntityManager, identity: Identity | null): OpportunityLoaders {
  const scope = visibleScope(identity);
  const groups = new Map<string, DataLoader<string, ApprovalRequest[]>>();
  return {
    request: byIdLoader(em, ApprovalRequest, scope, { lean: true }),
    byCustomer(status, props) {
      const key = `${status ?? '*'} ${props?.join(',') ?? '*'}`;
      let loader = groups.get(key);
      if (!loader) {
        loader = groupLoader<string, ApprovalRequest>(
          (customerIds) =>
            newestByParent<ApprovalRequest>(
              em,
              ApprovalRequest,
              'customerId',
              customerIds,
              { $and: [status ? { status } : {}, scope] },
              { props, limit: APPROVAL_REQUESTS_PER_CUSTOMER },
            ),
          (r) => r.customerId,
        );
        groups.set(key, loader);
      }
      return loader;
    },
  };
}

type Ctx = RequestContext<OpportunityLoaders>;

const uuid = z.string().uuid();
const isUuid = (id: string) => uuid.safeParse(id).success;

/**
 * An approval's amount: finite, not negative, at most a trillion. Without a ceiling, two approved
 * amounts near Float's limit (1e308) would make every sum over them overflow: the analytics reports
 * of any window holding both would fail for good.
 */
const MAX_AMOUNT = 1e12;
const amount = z
  .number()
  .finite()
  .min(0, 'must not be negative')
  .max(MAX_AMOUNT, `must be at most ${MAX_AMOUNT.toLocaleString('en-US')}`);

const requestApprovalInput = z.object({
  customerId: z.string().uuid('must be a valid id'),
  title: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  description: z
    .string()
    .max(5000, 'must be at most 5000 characters')
    .nullish()
    .transform((v) => (v?.trim() ? v : null)),
  amount: amount.nullish().transform((v) => v ?? null),
});
const updateRequestInput = z.object({
  title: requestApprovalInput.shape.title.optional(),
  description: z.string().max(5000, 'must be at most 5000 characters').nullish(),
  amount: amount.nullish(),
});
const decisionInput = z.object({
  comment: z
    .string()
    .max(5000, 'must be at most 5000 characters')
    .nullish()
    .transform((v) => (v?.trim() ? v.trim() : null)),
});

/**
 * Loads a request the caller may see, locked for the write's transaction `em` (loadForWrite), or
 * NOT_FOUND (SALES: someone else's request does not exist for them). Every writer of a request
 * locks its row before its event's version counter (the outbox insert): decide and recall here,
 * cancelPending (one UPDATE of the rows, then the outbox) in the consumer — one lock order.
 */
async function findWritable(em: EntityManager, me: Identity, id: string): Promise<ApprovalRequest> {
  const req = isUuid(id) ? await loadForWrite(em, ApprovalRequest, { $and: [{ id }, visibleScope(me)] }) : null;
  if (!req) throw notFound('ApprovalRequest', id);
  return req;
}

function requirePending(req: ApprovalRequest) {
  if (req.status !== 'PENDING') throw conflict(`Approval request is ${req.status}; only a PENDING request can change`);
}

/** A state change in one transaction; a lost optimistic-lock race is a CONFLICT (the other change won). */
async function writeOrConflict<R>(ctx: Ctx, fn: (tx: WriteContext) => Promise<R>): Promise<R> {
  try {
    return await ctx.write(fn);
  } catch (err) {
    if (err instanceof OptimisticLockError) throw conflict('Approval request was changed concurrently; only a PENDING request can change');
    throw err;
  }
}

async function decide(ctx: Ctx, args: { id: string; comment?: string | null }, to: 'APPROVED' | 'REJECTED') {
  const me = requireRole(ctx.identity, 'MANAGER', 'ADMIN');
  const { comment } = parseInput(decisionInput, { comment: args.comment });
  return writeOrConflict(ctx, async ({ em, emit }) => {
    const req = await findWritable(em, me, args.id);
    if (req.requesterId === me.userId) throw forbidden('You cannot decide your own approval request');
    requirePending(req);
    req.status = to;
    req.approverId = me.userId;
    req.decisionComment = comment;
    req.decidedAt = new Date();
    emit(to === 'APPROVED' ? 'approval.approved' : 'approval.rejected', req.id, approvalData(req));
    return req;
  });
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  Query: {
    approvalRequest: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(id) ? ctx.loaders.request.load(id) : null;
    },
    pendingApprovals: async (_: unknown, args: { first?: number | null; after?: string | null }, ctx: Ctx, info: GraphQLResolveInfo) => {
      const me = requireUser(ctx.identity);
      // MANAGER, ADMIN and COMPLIANCE (who reads everything) see every pending request; SALES their own.
      const where = { $and: [{ status: 'PENDING' }, visibleScope(me)] } as FilterQuery<ApprovalRequest>;
      return paginate(ctx.em, ApprovalRequest, where, args, {
        lean: true,
        props: connectionProps(ctx.em, ApprovalRequest, info, REQUEST_NEEDS),
        count: wantsTotalCount(info),
      });
    },
  },
  Mutation: {
    requestApproval: async (_: unknown, args: { input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(requestApprovalInput, args.input);
      const customer = await requireCustomerRef(ctx.em, ctx.peers, me, input.customerId);
      const req = ctx.em.create(ApprovalRequest, {
        id: randomUUID(),
        customerId: customer.id,
        requesterId: me.userId,
        title: input.title,
        description: input.description,
        amount: input.amount,
      });
      ctx.emit('approval.requested', req.id, approvalData(req));
      await ctx.em.flush();
      return req;
    },
    approveRequest: (_: unknown, args: { id: string; comment?: string | null }, ctx: Ctx) => decide(ctx, args, 'APPROVED'),
    rejectRequest: (_: unknown, args: { id: string; comment?: string | null }, ctx: Ctx) => decide(ctx, args, 'REJECTED'),
    recallRequest: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      return writeOrConflict(ctx, async ({ em, emit }) => {
        const req = await findWritable(em, me, id);
        if (req.requesterId !== me.userId) throw forbidden('Only the requester may recall an approval request');
        requirePending(req);
        req.status = 'RECALLED';
        emit('approval.recalled', req.id, approvalData(req));
        return req;
      });
    },
    updateApprovalRequest: async (_: unknown, args: { id: string; input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const raw = (args.input ?? {}) as Record<string, unknown>;
      if (raw.title === null) throw badInput('title cannot be cleared', 'title');
      const input = parseInput(updateRequestInput, raw);
      return writeOrConflict(ctx, async ({ em, emit }) => {
        const req = await findWritable(em, me, args.id);
        if (req.requesterId !== me.userId) throw forbidden('Only the requester may change an approval request');
        requirePending(req);
        const changes: string[] = [];
        if (input.title !== undefined && input.title !== req.title) {
          req.title = input.title;
          changes.push('title');
        }
        const description = input.description?.trim() ? input.description : null;
        if ('description' in raw && description !== req.description) {
          req.description = description;
          changes.push('description');
        }
        if ('amount' in raw && (input.amount ?? null) !== req.amount) {
          req.amount = input.amount ?? null;
          changes.push('amount');
        }
        if (changes.length === 0) return req;
        // Under the row's lock: a decision racing with this change comes before or after it as a whole.
        emit('approval.updated', req.id, { ...approvalData(req), changes });
        return req;
      });
    },
  },
  ApprovalRequest: {
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(ref.id) ? ctx.loaders.request.load(ref.id) : null;
    },
    customer: (r: ApprovalRequest) => ({ id: r.customerId }),
    requester: (r: ApprovalRequest) => ({ id: r.requesterId }),
    approver: (r: ApprovalRequest) => (r.approverId ? { id: r.approverId } : null),
  },
  Customer: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    approvalRequests: async (customer: { id: string }, args: { status?: ApprovalStatus | null }, ctx: Ctx, info: GraphQLResolveInfo) => {
      requireUser(ctx.identity);
      if (!isUuid(customer.id)) return [];
      const status = args.status && (APPROVAL_STATUSES as readonly string[]).includes(args.status) ? args.status : null;
      // Unpaged: at most the newest APPROVAL_REQUESTS_PER_CUSTOMER (the gateway's cost estimate counts an unpaged list as that many).
      const props = propsFor(ctx.em, ApprovalRequest, selectedFields(info), REQUEST_NEEDS);
      return ctx.loaders.byCustomer(status, props).load(customer.id);
    },
  },
};
