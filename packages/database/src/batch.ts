/**
 * Batched connections for list-valued entity fields (Customer.tasks, User.customers, …): one SQL
 * statement for all parents of a request, whatever their number, via a window function. Used
 * through `connectionLoaders`, which gives one DataLoader per distinct argument set per request.
 */
import DataLoader from 'dataloader';
import type { EntityManager, EntityName, FilterQuery } from '@mikro-orm/postgresql';
import { decodeCursor, pageSize, toConnection, type Connection, type PageArgs } from './pagination';
import { columnOf, countsByParent, findRows, plainRows, selectList } from './lean';

interface Row {
  id: string;
  createdAt: Date;
}

/**
 * One page per parent: plain rows (lean.ts) of `entity` whose `parentProp` is one of `parentIds`,
 * newest first, with only `props` (id, createdAt and the parent property are always read; all
 * columns when undefined). One statement; a second only for parents whose rows all precede the cursor.
 */
export async function pagesByParent<T extends Row>(
  em: EntityManager,
  entity: EntityName<T>,
  parentProp: string,
  parentIds: readonly string[],
  where: FilterQuery<T>,
  args: PageArgs,
  props?: readonly string[],
): Promise<Map<string, Connection<T>>> {
  const first = pageSize(args.first);
  const cursor = decodeCursor(args.after);
  const parentColumn = columnOf(em, entity, parentProp);
  const knex = em.getKnex();
  const scope = { $and: [{ [parentProp]: { $in: [...parentIds] } }, where] } as FilterQuery<T>;
  const wanted = props ? [...new Set([...props, 'id', 'createdAt', parentProp])] : undefined;
  // count over the unpaged scope, row numbers over the rows after the cursor
  const inner = em
    .createQueryBuilder(entity, 't')
    .select([...selectList(em, entity, wanted), knex.raw('count(*) over (partition by ??) as __total', [`t.${parentColumn}`])] as never)
    .where(scope)
    .getKnexQuery();
  const paged = knex.select('*', knex.raw('row_number() over (partition by ?? order by ?? desc, id desc) as __rn', [parentProp, 'createdAt'])).from(inner.as('s'));
  if (cursor) paged.whereRaw('(??, id) < (?, ?)', ['createdAt', cursor.createdAt, cursor.id]);
  const rows = plainRows<Record<string, unknown>>(
    em,
    entity,
    await em.getConnection().execute(
      knex
        .select('*')
        .from(paged.as('p'))
        .where('__rn', '<=', first + 1),
    ),
  );
  const grouped = new Map<string, { rows: T[]; total: number }>();
  for (const raw of rows) {
    const parent = String(raw[parentProp]);
    const total = Number(raw.__total);
    delete raw.__total;
    delete raw.__rn;
    const entry = grouped.get(parent) ?? { rows: [], total };
    entry.rows.push(raw as T);
    grouped.set(parent, entry);
  }
  const out = new Map<string, Connection<T>>();
  for (const id of parentIds) {
    const entry = grouped.get(id);
    out.set(id, toConnection(entry?.rows ?? [], first, entry?.total ?? 0));
  }
  // Parents whose rows are all before the cursor still need their total: count them apart only then.
  if (cursor) {
    const missing = parentIds.filter((id) => !grouped.has(id));
    if (missing.length > 0) {
      for (const [parent, n] of await countsByParent(em, entity, parentProp, missing, where)) out.set(parent, toConnection([], first, n));
    }
  }
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
    const rows = await fetch(keys);
    const groups = new Map<K, V[]>();
    for (const row of rows) {
      const key = keyOf(row);
      const group = groups.get(key);
      if (group) group.push(row);
      else groups.set(key, [row]);
    }
    return keys.map((k) => groups.get(k) ?? []);
  });
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
