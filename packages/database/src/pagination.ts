/**
 * Relay connections with opaque keyset cursors over (createdAt DESC, id DESC): stable under
 * inserts, index-friendly, and the same shape for every list in the API.
 */
import type { EntityManager, EntityName, FilterQuery } from '@mikro-orm/postgresql';
import { badInput } from '@crm/errors';
import { findRows } from './lean';

export const DEFAULT_PAGE = 20;
export const MAX_PAGE = 100;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}
/** A page as a loader asks for it: `count: false` when the selection has no totalCount (wantsTotalCount). */
export interface PageRequest extends PageArgs {
  count?: boolean;
}
export interface Cursor {
  createdAt: Date;
  id: string;
}
export interface Connection<T> {
  edges: { node: T; cursor: string }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  totalCount: number;
}

export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE) throw badInput(`first must be between 0 and ${MAX_PAGE}`, 'first');
  return first;
}

export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

/** Every paginated table's key is a uuid: a cursor's id that is not one would fail in SQL. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The cursor `encodeCursor` made, or BAD_USER_INPUT: a client can forge one, so both parts are
 * checked before they reach SQL (an id that is not a uuid, or a date Postgres cannot hold, would
 * otherwise fail there as an internal error).
 */
export function decodeCursor(cursor: string | null | undefined): Cursor | null {
  if (!cursor) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) throw new Error('bad cursor');
    const [at, id] = value as unknown[];
    if (typeof at !== 'string' || typeof id !== 'string' || !UUID.test(id)) throw new Error('bad cursor');
    const createdAt = new Date(at);
    const year = createdAt.getUTCFullYear();
    if (Number.isNaN(year) || year < 1 || year > 9999) throw new Error('bad cursor');
    return { createdAt, id };
  } catch {
    throw badInput('after is not a valid cursor', 'after');
  }
}

/**
 * The filter that selects rows strictly after `cursor` in (createdAt DESC, id DESC) order. The
 * leading `createdAt <= cursor` is implied by the `$or` (it changes no result) but, unlike the `$or`,
 * is an index condition on a (created_at DESC, id DESC) index: page n starts at the cursor instead
 * of reading and discarding the n-1 pages before it.
 */
export function afterCursor(cursor: Cursor | null): Record<string, unknown> {
  if (!cursor) return {};
  return {
    createdAt: { $lte: cursor.createdAt },
    $or: [{ createdAt: { $lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $lt: cursor.id } }],
  };
}

/** Builds a connection from up to first+1 rows already in (createdAt DESC, id DESC) order. */
export function toConnection<T extends { createdAt: Date; id: string }>(rows: T[], first: number, totalCount: number): Connection<T> {
  const page = rows.slice(0, first);
  // Cursors are encoded when read: most selections ask for pageInfo.endCursor only, and a nested
  // list (a customer's tasks on a page of customers) often for neither.
  const edges = page.map((node) => ({
    node,
    get cursor() {
      return encodeCursor(node);
    },
  }));
  const last = page.at(-1);
  return {
    edges,
    pageInfo: {
      hasNextPage: rows.length > first,
      get endCursor() {
        return last ? encodeCursor(last) : null;
      },
    },
    totalCount,
  };
}

/**
 * One page of `entity` matching `where`: a keyset query and a count. Managed entities, or with
 * `{ lean: true }` plain rows of only `props` (lean.ts; id and createdAt always) for read-only callers.
 * `count: false` skips the count when the caller's selection has no totalCount.
 */
export async function paginate<T extends { createdAt: Date; id: string }>(
  em: EntityManager,
  entity: EntityName<T>,
  /**
   * The filter, or a function that builds it: each statement gets its own copy (a filter with a
   * MikroORM `raw()` key must be built per statement: a raw key is consumed by the first one).
   */
  filter: FilterQuery<T> | (() => FilterQuery<T>),
  args: PageArgs,
  options: { lean?: boolean; props?: readonly string[]; count?: boolean } = {},
): Promise<Connection<T>> {
  const where = typeof filter === 'function' ? filter : () => filter;
  const first = pageSize(args.first);
  const cursor = decodeCursor(args.after);
  const orderBy = { createdAt: 'desc', id: 'desc' } as const;
  const props = options.props ? [...new Set([...options.props, 'id', 'createdAt'])] : undefined;
  const rows = (): Promise<T[]> => {
    const scoped = { $and: [where(), afterCursor(cursor)] } as FilterQuery<T>;
    return options.lean ? findRows<T>(em, entity, scoped, { props, orderBy, limit: first + 1 }) : em.find(entity, scoped, { orderBy: orderBy as never, limit: first + 1 });
  };
  // count: false when the selection has no totalCount (wantsTotalCount): NaN then, which GraphQL
  // would refuse to serialise as an Int, so a wrong `count: false` fails loudly instead of lying.
  const [page, totalCount] = await Promise.all([
    first === 0 ? Promise.resolve([] as T[]) : rows(),
    options.count === false ? Promise.resolve(Number.NaN) : em.count(entity, where()),
  ]);
  return toConnection(page, first, totalCount);
}
