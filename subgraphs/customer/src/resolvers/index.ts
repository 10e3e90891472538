import { randomUUID } from 'node:crypto';
import type DataLoader from 'dataloader';
import type { GraphQLResolveInfo } from 'graphql';
import { z } from 'zod';
import { UniqueConstraintViolationException, type EntityManager, type FilterQuery } from '@mikro-orm/postgresql';
import { badInput, forbidden, notFound } from '@crm/errors';
import { byIdLoader, connectionLoaders, connectionProps, paginate, pageSize, pagesByParent, toConnection, wantsTotalCount, type Connection, type PageArgs } from '@crm/database';
import { loadForWrite } from '@crm/events';
import { parseInput, requireRole, requireUser, requireWriter, scalarResolvers, seesAll, type Identity, type RequestContext } from '@crm/runtime';
import { COMPANY_SIZES, Customer, INVESTMENT_PROFILES, RISK_TOLERANCES, Rep } from '../entities';
import { CUSTOMER_DELETION_STEPS, customerEventData, requireActiveRep, searchFilter } from '../customers';
import type { Resolvers } from '../generated/resolvers-types';

type PageWithProps = PageArgs & { props?: string[] };

export interface CustomerLoaders {
  /** Live customers by id (soft-deleted ones load as null), as plain rows (read-only). */
  customer: DataLoader<string, Customer | null>;
  /** User.customers pages (plain rows of the selected columns), batched over every user of the request with the same arguments. */
  customersOfRep: (args: PageWithProps & Record<string, unknown>) => DataLoader<string, Connection<Customer>>;
}

export function createLoaders(em: EntityManager): CustomerLoaders {
  return {
    customer: byIdLoader(em, Customer, { deletedAt: null }, { lean: true }),
    customersOfRep: connectionLoaders<Customer>((repIds, args) => pagesByParent(em, Customer, 'assignedRepId', repIds, { deletedAt: null }, args, (args as PageWithProps).props)),
  };
}

/** GraphQL fields of Customer that read other columns than their own name. */
const CUSTOMER_NEEDS = { assignedRep: ['assignedRepId'] };

type Ctx = RequestContext<CustomerLoaders>;

// ------------------------------------------------------------------ validation

const uuid = z.string().uuid();
const isUuid = (id: string) => uuid.safeParse(id).success;

/** Optional text: trimmed; '' means "no value" (null); undefined means "not given". */
const optionalText = (inner: z.ZodString) => z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? null : typeof v === 'string' ? v.trim() : v), inner.nullish());

const PHONE_CHARS = /^[0-9 +\-().]+$/;
const phone = z
  .string()
  .max(40, 'must be at most 40 characters')
  .regex(PHONE_CHARS, 'may contain only digits, spaces and + - ( ) .')
  .refine((p) => {
    const digits = p.replace(/\D/g, '').length;
    return digits >= 6 && digits <= 20;
  }, 'must contain 6 to 20 digits');

const fields = {
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  email: optionalText(z.string().email('must be a valid email address').max(254, 'must be at most 254 characters')),
  phone: optionalText(phone),
  industry: optionalText(z.string().max(200, 'must be at most 200 characters')),
  size: z.enum(COMPANY_SIZES).nullish(),
  investmentProfile: z.enum(INVESTMENT_PROFILES).nullish(),
  riskTolerance: z.enum(RISK_TOLERANCES).nullish(),
};

const createInput = z.object({
  ...fields,
  assignedRepId: z.string().uuid('must be a valid id').nullish(),
});
// name may be left out but not cleared (a customer always has a name)
const updateInput = z.object({ ...fields, name: fields.name.optional() });

type CreateInput = z.infer<typeof createInput>;

const SEARCH_MAX = 200;

// ------------------------------------------------------------------ access

/** Whether the caller may see `c` (SALES: only the customers assigned to them). */
const canSee = (me: Identity, c: Customer) => seesAll(me) || c.assignedRepId === me.userId;

async function loadVisible(ctx: Ctx, id: string): Promise<Customer | null> {
  const me = requireUser(ctx.identity);
  if (!isUuid(id)) return null;
  const c = await ctx.loaders.customer.load(id);
  return c && canSee(me, c) ? c : null;
}

/**
 * A live customer the caller may change, locked for the write's transaction `em`, or NOT_FOUND (the
 * same answer whether it exists or is someone else's).
 */
async function loadWritable(em: EntityManager, id: string, me: Identity): Promise<Customer> {
  const c = isUuid(id) ? await loadForWrite(em, Customer, { id, deletedAt: null }) : null;
  if (!c || !canSee(me, c)) throw notFound('Customer', id);
  return c;
}

// ------------------------------------------------------------------ mutations

async function createCustomer(ctx: Ctx, me: Identity, input: CreateInput): Promise<Customer> {
  let repId: string | null;
  if (me.role === 'SALES') {
    if (input.assignedRepId && input.assignedRepId !== me.userId) throw forbidden('SALES users may only create customers assigned to themselves');
    repId = me.userId;
    const rep = await ctx.em.findOne(Rep, { id: me.userId });
    if (!rep) {
      // The directory has not caught up with user.created yet: trust the gateway-signed identity.
      ctx.em.create(Rep, { id: me.userId, name: me.email, email: me.email });
    } else if (!rep.active && !(await requireActiveRep(ctx.em, ctx.peers, me.userId))) {
      throw forbidden('Your account is not an active sales rep');
    }
  } else {
    repId = input.assignedRepId ?? null;
    if (repId && !(isUuid(repId) && (await requireActiveRep(ctx.em, ctx.peers, repId)))) throw badInput('assignedRepId is not an active SALES rep', 'assignedRepId');
  }
  const c = ctx.em.create(Customer, {
    id: randomUUID(),
    name: input.name,
    email: input.email ?? null,
    phone: input.phone ?? null,
    industry: input.industry ?? null,
    size: input.size ?? null,
    investmentProfile: input.investmentProfile ?? null,
    riskTolerance: input.riskTolerance ?? null,
    assignedRepId: repId,
  });
  ctx.emit('customer.created', c.id, customerEventData(c));
  await ctx.em.flush();
  return c;
}

const UPDATABLE = ['name', 'email', 'phone', 'industry', 'size', 'investmentProfile', 'riskTolerance'] as const;

// ------------------------------------------------------------------ resolvers

export const resolvers: Resolvers = {
  DateTime: scalarResolvers.DateTime,
  Query: {
    customer: (_: unknown, { id }: { id: string }, ctx: Ctx) => loadVisible(ctx, id),
    customers: async (
      _: unknown,
      args: { search?: string | null; assignedRepId?: string | null; first?: number | null; after?: string | null },
      ctx: Ctx,
      info: GraphQLResolveInfo,
    ) => {
      const me = requireUser(ctx.identity);
      const and: FilterQuery<Customer>[] = [{ deletedAt: null }];
      if (!seesAll(me)) and.push({ assignedRepId: me.userId });
      if (args.assignedRepId) {
        if (!isUuid(args.assignedRepId)) throw badInput('assignedRepId is not a valid id', 'assignedRepId');
        and.push({ assignedRepId: args.assignedRepId });
      }
      const search = args.search?.trim();
      if (search && search.length > SEARCH_MAX) throw badInput(`search must be at most ${SEARCH_MAX} characters`, 'search');
      // built per statement (page, count): the search filter's raw() key serves one statement
      const where = search ? (): FilterQuery<Customer> => ({ $and: [...and, searchFilter(search)] }) : { $and: and };
      return paginate(ctx.em, Customer, where, args, {
        lean: true,
        props: connectionProps(ctx.em, Customer, info, CUSTOMER_NEEDS),
        count: wantsTotalCount(info),
      });
    },
  },
  Mutation: {
    createCustomer: async (_: unknown, args: { input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(createInput, args.input);
      try {
        return await createCustomer(ctx, me, input);
      } catch (err) {
        // A user.created handler inserted the caller's rep row between our check and our flush: retry once.
        if (!(err instanceof UniqueConstraintViolationException)) throw err;
        ctx.em.clear();
        return createCustomer(ctx, me, input);
      }
    },
    updateCustomer: async (_: unknown, args: { id: string; input: unknown }, ctx: Ctx) => {
      const me = requireWriter(ctx.identity);
      const input = parseInput(updateInput, args.input);
      // The snapshot the event carries is read under this write's lock (loadForWrite): a concurrent
      // assignCustomer commits before or after, never in between.
      return ctx.write(async ({ em, emit }) => {
        const c = await loadWritable(em, args.id, me);
        const changes: string[] = [];
        for (const key of UPDATABLE) {
          const value = input[key];
          if (value === undefined || value === c[key]) continue;
          (c as unknown as Record<string, unknown>)[key] = value;
          changes.push(key);
        }
        if (changes.length > 0) {
          c.updatedAt = new Date();
          emit('customer.updated', c.id, { ...customerEventData(c), changes });
        }
        return c;
      });
    },
    assignCustomer: async (_: unknown, args: { id: string; repId: string }, ctx: Ctx) => {
      requireRole(ctx.identity, 'MANAGER', 'ADMIN');
      if (!isUuid(args.repId) || !(await requireActiveRep(ctx.em, ctx.peers, args.repId))) throw badInput('repId is not an active SALES rep', 'repId');
      return ctx.write(async ({ em, emit }) => {
        const c = isUuid(args.id) ? await loadForWrite(em, Customer, { id: args.id, deletedAt: null }) : null;
        if (!c) throw notFound('Customer', args.id);
        if (c.assignedRepId === args.repId) return c;
        const fromRepId = c.assignedRepId;
        c.assignedRepId = args.repId;
        c.updatedAt = new Date();
        emit('customer.reassigned', c.id, { ...customerEventData(c), fromRepId, sagaId: null });
        return c;
      });
    },
    deleteCustomer: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireRole(ctx.identity, 'MANAGER', 'ADMIN');
      return ctx.write(async ({ em, emit }) => {
        const c = isUuid(id) ? await loadForWrite(em, Customer, { id, deletedAt: null }) : null;
        if (!c) throw notFound('Customer', id);
        const sagaId = randomUUID();
        c.deletedAt = new Date();
        c.deletedBySaga = sagaId;
        const cause = { actorId: me.userId, correlationId: sagaId };
        emit('customer.deleted', c.id, { ...customerEventData(c), sagaId, requestedBy: me.userId }, cause);
        emit(
          'customer.saga_step',
          sagaId,
          {
            sagaId,
            sagaType: 'customer-deletion',
            subjectId: c.id,
            step: 'customer.soft-delete',
            status: 'DONE',
            detail: null,
            ends: null,
            expectedSteps: CUSTOMER_DELETION_STEPS,
          },
          cause,
        );
        return { id: sagaId };
      });
    },
  },
  Customer: {
    __resolveReference: (ref: { id: string }, ctx: Ctx) => loadVisible(ctx, ref.id),
    assignedRep: (c: Customer) => (c.assignedRepId ? { __typename: 'User', id: c.assignedRepId } : null),
  },
  User: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    customers: (user: { id: string }, args: PageArgs, ctx: Ctx, info: GraphQLResolveInfo) => {
      const me = requireUser(ctx.identity);
      const page = { first: args.first ?? null, after: args.after ?? null, props: connectionProps(ctx.em, Customer, info, CUSTOMER_NEEDS), count: wantsTotalCount(info) };
      if (!seesAll(me) && user.id !== me.userId) return toConnection([], pageSize(page.first), 0);
      if (!isUuid(user.id)) return toConnection([], pageSize(page.first), 0);
      return ctx.loaders.customersOfRep(page).load(user.id);
    },
  },
};
