/**
 * Batched connections for list-valued entity fields (Customer.tasks, User.customers, …): one SQL
 * statement for all parents of a request, whatever their number (a LATERAL page and count per
 * parent). Used through `connectionLoaders`, which gives one DataLoader per distinct argument set
 * per request.
 */
import DataLoader from 'dataloader';
import type { EntityManager, EntityName, FilterQuery } from '@mikro-orm/postgresql';
import { afterCursor, decodeCursor, pageSize, toConnection, type Connection, type PageArgs, type PageRequest } from './pagination';
import { findRows, newestAndCounts } from './lean';

interface Row {
  id: string;
  createdAt: Date;
}

/**
 * One page per parent: plain rows (lean.ts) of `entity` whose `parentProp` is one of `parentIds`,
 * newest first, with only `props` (id, createdAt and the parent property are always read; all
 * columns when undefined), and each parent's total. One statement (lean.ts newestAndCounts): per
 * parent, the first+1 rows after the cursor through an index on (parent, created_at DESC, id DESC),
 * so a parent with thousands of rows costs a page, not all of them; and its count, unless
 * `args.count` is false (the selection has no totalCount, lean.ts wantsTotalCount): totalCount is NaN
 * then, which GraphQL refuses to serialise as an Int, so a wrong `count: false` fails loudly.
 */
export async function pagesByParent<T extends Row>(
  em: EntityManager,
  entity: EntityName<T>,
  parentProp: string,
  parentIds: readonly string[],
  where: FilterQuery<T>,
  args: PageRequest,
  props?: readonly string[],
): Promise<Map<string, Connection<T>>> {
  const first = pageSize(args.first);
  const cursor = decodeCursor(args.after);
  const count = args.count !== false;
  const { rows, counts } = await newestAndCounts<T>(em, entity, parentProp, parentIds, where as FilterQuery<any>, {
    props,
    limit: first + 1,
    ...(cursor ? { after: afterCursor(cursor) } : {}),
    count,
  });
  const grouped = groupBy(rows, (row) => String((row as Record<string, unknown>)[parentProp]));
  const out = new Map<string, Connection<T>>();
  for (const id of parentIds) out.set(id, toConnection(grouped.get(id) ?? [], first, count ? (counts.get(id) ?? 0) : Number.NaN));
  return out;
}

/**
 * Per-request loaders for a list-valued field: `load(args)(parentId)`. Parents asked with the
 * same arguments are batched into one pagesByParent call.
 */
export function connectionLoaders<T extends Row>(batch: (parentIds: readonly string[], args: PageArgs & Record<string, unknown>) => Promise<Map<string, Connection<T>>>) {
  const byArgs = new Map<string, DataLoader<string, Connection<T>>>();
  return (args: PageArgs & Record<string, unknown>) => {
    const key = JSON.stringify(args, Object.keys(args).sort());
    let loader = byArgs.get(key);
    if (!loader) {
      loader = new DataLoader(async (ids: readonly string[]) => {
        const pages = await batch(ids, args);
        return ids.map((id) => pages.get(id) ?? toConnection([], pageSize(args.first), 0));
      });
      byArgs.set(key, loader);
    }
    return loader;
  };
}

/** Per-request `count(*)` per parent (countsByParent), batched: for a connection asked only for totalCount. */
export function countLoader(batch: (parentIds: readonly string[]) => Promise<Map<string, number>>): DataLoader<string, number> {
  return new DataLoader(async (ids: readonly string[]) => {
    const counts = await batch(ids);
    return ids.map((id) => counts.get(id) ?? 0);
  });
}

/** A DataLoader that fetches rows by a key in one query and groups them (1:N, unpaged). */
export function groupLoader<K extends string, V>(fetch: (keys: readonly K[]) => Promise<V[]>, keyOf: (v: V) => K): DataLoader<K, V[]> {
  return new DataLoader(async (keys: readonly K[]) => {
    const groups = groupBy(await fetch(keys), keyOf);
    return keys.map((k) => groups.get(k) ?? []);
  });
}

/** Rows by key, each group in the rows' order. */
function groupBy<K, V>(rows: readonly V[], keyOf: (v: V) => K): Map<K, V[]> {
  const groups = new Map<K, V[]>();
  for (const row of rows) {
    const key = keyOf(row);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  return groups;
}

/**
 * A DataLoader by id (one `IN` query per batch): managed entities, or plain rows with
 * `{ lean: true }` (lean.ts; read-only callers).
 */
export function byIdLoader<T extends { id: string }>(
  em: EntityManager,
  entity: EntityName<T>,
  scope: FilterQuery<T> = {},
  options: { lean?: boolean } = {},
): DataLoader<string, T | null> {
  return new DataLoader(async (ids: readonly string[]) => {
    const where = { $and: [{ id: { $in: [...ids] } }, scope] } as FilterQuery<T>;
    const rows = options.lean ? await findRows<T>(em, entity, where) : await em.find(entity, where);
    const map = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => map.get(id) ?? null);
  });
}
