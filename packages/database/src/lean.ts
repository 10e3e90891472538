/**
 * The lean read path: read-only resolvers get plain rows, not managed entities. The SQL is still
 * built by MikroORM's QueryBuilder from the same filter objects (so the authorization scopes are
 * the very same `where` clauses), but it runs on the connection and selects only the columns the
 * GraphQL selection needs, each aliased to its property name: no hydration, no identity map, no
 * unit of work — the largest CPU block of a list request before this change.
 *
 * Rows have the entity's property names and JS types (float8 → number and json → object as the pg
 * driver parses them; timestamps, which MikroORM has the driver leave as text, → Date here);
 * columns not selected are absent.
 */
import type { FieldNode, GraphQLResolveInfo, SelectionSetNode } from 'graphql';
import type { EntityManager, EntityName, FilterQuery } from '@mikro-orm/postgresql';

interface Meta {
  className: string;
  properties: Record<string, { fieldNames?: string[]; kind?: string; persist?: boolean; type?: string; runtimeType?: string }>;
}

const metaOf = (em: EntityManager, entity: EntityName<any>): Meta => em.getMetadata().get(typeof entity === 'string' ? entity : (entity as { name: string }).name);

/** The column of a scalar property, or an error naming it. */
export function columnOf(em: EntityManager, entity: EntityName<any>, prop: string): string {
  const meta = metaOf(em, entity);
  const column = meta.properties[prop]?.fieldNames?.[0];
  if (!column) throw new Error(`${meta.className} has no property ${prop}`);
  return column;
}

/** Every persisted scalar property of an entity (the default when a selection is unknown). */
function allProps(meta: Meta): string[] {
  return Object.entries(meta.properties)
    .filter(([, p]) => p.persist !== false && (p.kind === undefined || p.kind === 'scalar') && p.fieldNames?.length)
    .map(([name]) => name);
}

/** `"t"."col" as "prop"` for each property (all persisted scalars when `props` is undefined). */
export function selectList(em: EntityManager, entity: EntityName<any>, props: readonly string[] | undefined, alias = 't') {
  const meta = metaOf(em, entity);
  const knex = em.getKnex();
  return (props ?? allProps(meta)).map((p) => knex.raw('??.?? as ??', [alias, columnOf(em, entity, p), p]));
}

const dateProps = new WeakMap<object, string[]>();

/** Turns the timestamp columns of raw rows (aliased to property names) into Dates, in place. */
export function plainRows<T>(em: EntityManager, entity: EntityName<any>, rows: Record<string, unknown>[]): T[] {
  const meta = metaOf(em, entity);
  let dates = dateProps.get(meta);
  if (!dates) {
    dates = Object.entries(meta.properties)
      .filter(([, p]) => p.runtimeType === 'Date' || /^(datetime|date|timestamp|timestamptz)$/i.test(p.type ?? ''))
      .map(([name]) => name);
    dateProps.set(meta, dates);
  }
  for (const row of rows) {
    for (const d of dates) {
      const v = row[d];
      if (typeof v === 'string') row[d] = new Date(v);
    }
  }
  return rows as T[];
}

/** Plain rows of `entity` matching `where` (a MikroORM filter), only the given properties. */
export async function findRows<T>(
  em: EntityManager,
  entity: EntityName<any>,
  where: FilterQuery<any>,
  options: { props?: readonly string[]; orderBy?: Record<string, 'asc' | 'desc'>; limit?: number } = {},
): Promise<T[]> {
  const qb = em
    .createQueryBuilder(entity, 't')
    .select(selectList(em, entity, options.props) as never)
    .where(where as never);
  if (options.orderBy) qb.orderBy(options.orderBy as never);
  if (options.limit !== undefined) qb.limit(options.limit);
  return plainRows<T>(em, entity, await em.getConnection().execute(qb.getKnexQuery()));
}

/**
 * The newest `limit` rows (createdAt, id descending) of each parent, in one statement: a LATERAL
 * subquery per parent id, so an index on (parent, created_at DESC, id DESC) reads at most `limit`
 * rows of each parent however many it has. Only `props` (all scalars when undefined; id, createdAt
 * and the parent property always); rows grouped by parent in `parentIds` order, newest first.
 * `after`: only rows past that filter (a cursor, pagination.ts afterCursor); `count`: also each
 * parent's number of rows matching `where` (without `after`), in the same statement.
 */
export async function newestByParent<T>(
  em: EntityManager,
  entity: EntityName<any>,
  parentProp: string,
  parentIds: readonly string[],
  where: FilterQuery<any>,
  options: { props?: readonly string[]; limit: number; after?: Record<string, unknown> },
): Promise<T[]> {
  return (await newestAndCounts<T>(em, entity, parentProp, parentIds, where, { ...options, count: false })).rows;
}

/** newestByParent, and with `count` each parent's total (0 for a parent without rows). */
export async function newestAndCounts<T>(
  em: EntityManager,
  entity: EntityName<any>,
  parentProp: string,
  parentIds: readonly string[],
  where: FilterQuery<any>,
  options: { props?: readonly string[]; limit: number; after?: Record<string, unknown>; count: boolean },
): Promise<{ rows: T[]; counts: Map<string, number> }> {
  const counts = new Map<string, number>();
  if (parentIds.length === 0) return { rows: [], counts };
  const column = columnOf(em, entity, parentProp);
  const knex = em.getKnex();
  const props = options.props ? [...new Set([...options.props, 'id', 'createdAt', parentProp])] : undefined;
  const correlated = <Q extends { whereRaw(sql: string, bindings: readonly string[]): Q }>(q: Q) => q.whereRaw('??.?? = p.parent', ['t', column]);
  const rowsQuery = correlated(
    em
      .createQueryBuilder(entity, 't')
      .select(selectList(em, entity, props) as never)
      .where((options.after ? { $and: [where, options.after] } : where) as never)
      .orderBy({ createdAt: 'desc', id: 'desc' } as never)
      .limit(options.limit)
      .getKnexQuery(),
  );
  // The ids as one array value (bound, never spliced into the SQL).
  const ids = `{${parentIds.map((id) => `"${id.replace(/["\\]/g, '')}"`).join(',')}}`;
  const order = 'order by p.n, r."createdAt" desc, r.id desc';
  let query;
  if (options.count) {
    const countQuery = correlated(
      em
        .createQueryBuilder(entity, 't')
        .select([knex.raw('count(*)::int as n')] as never)
        .where(where as never)
        .getKnexQuery(),
    );
    // A parent without rows still comes once (r's columns null), with its count.
    query = knex.raw(
      `select r.*, p.parent::text as __parent, c.n as __total from unnest(?::uuid[]) with ordinality as p(parent, n) cross join lateral (?) as c left join lateral (?) as r on true ${order}`,
      [ids, countQuery, rowsQuery],
    );
  } else {
    query = knex.raw(`select r.* from unnest(?::uuid[]) with ordinality as p(parent, n) cross join lateral (?) as r ${order}`, [ids, rowsQuery]);
  }
  const raw = await em.getConnection().execute<Record<string, unknown>[]>(query);
  if (!options.count) return { rows: plainRows<T>(em, entity, raw), counts };
  const rows: Record<string, unknown>[] = [];
  for (const r of raw) {
    counts.set(String(r.__parent), Number(r.__total));
    delete r.__parent;
    delete r.__total;
    if (r.id !== null && r.id !== undefined) rows.push(r);
  }
  return { rows: plainRows<T>(em, entity, rows), counts };
}

/** `count(*)` per parent in one statement: rows of `entity` whose `parentProp` is one of `parentIds`. */
export async function countsByParent(
  em: EntityManager,
  entity: EntityName<any>,
  parentProp: string,
  parentIds: readonly string[],
  where: FilterQuery<any>,
): Promise<Map<string, number>> {
  const column = columnOf(em, entity, parentProp);
  const knex = em.getKnex();
  const qb = em
    .createQueryBuilder(entity, 't')
    .select([knex.raw('??.?? as parent', ['t', column]), knex.raw('count(*)::int as n')] as never)
    .where({ $and: [{ [parentProp]: { $in: [...parentIds] } }, where] })
    .groupBy(`t.${column}`);
  const rows = (await em.getConnection().execute(qb.getKnexQuery())) as { parent: string; n: number }[];
  return new Map(rows.map((r) => [String(r.parent), Number(r.n)]));
}

// ------------------------------------------------------------------ GraphQL selections

/**
 * Answers of selectedFields per field of a parsed document: a list field's resolver runs once per
 * parent (50 customers → 50 identical walks) and the servers keep parsed documents, so the same
 * FieldNode comes back with every request of the same operation. A selection does not depend on
 * variables here (no @skip / @include handling), so the document alone decides the answer.
 */
const selectionMemo = new WeakMap<object, Map<string, ReadonlySet<string> | null>>();

/**
 * The field names selected at `path` below the resolver's field (e.g. ['edges', 'node'] for a
 * connection's nodes), through fragments; null when the path is not selected at all. Shared
 * between calls: do not modify.
 */
export function selectedFields(info: GraphQLResolveInfo, path: readonly string[] = []): ReadonlySet<string> | null {
  // one FieldNode (the usual case) belongs to one parsed document; merged fields: per execution
  const key: object = info.fieldNodes.length === 1 ? info.fieldNodes[0]! : info.fieldNodes;
  const pathKey = path.join('.');
  let memo = selectionMemo.get(key);
  if (memo?.has(pathKey)) return memo.get(pathKey)!;
  const names = walkSelection(info, path);
  if (!memo) selectionMemo.set(key, (memo = new Map<string, ReadonlySet<string> | null>()));
  memo.set(pathKey, names);
  return names;
}

function walkSelection(info: GraphQLResolveInfo, path: readonly string[]): Set<string> | null {
  let sets: SelectionSetNode[] = info.fieldNodes.flatMap((f) => (f.selectionSet ? [f.selectionSet] : []));
  for (const step of path) {
    const next: SelectionSetNode[] = [];
    for (const set of sets) forEachField(info, set, (f) => f.name.value === step && f.selectionSet && next.push(f.selectionSet));
    if (next.length === 0) return null;
    sets = next;
  }
  const names = new Set<string>();
  for (const set of sets) forEachField(info, set, (f) => names.add(f.name.value));
  return names;
}

function forEachField(info: GraphQLResolveInfo, set: SelectionSetNode, visit: (f: FieldNode) => unknown): void {
  for (const s of set.selections) {
    if (s.kind === 'Field') visit(s);
    else if (s.kind === 'InlineFragment') forEachField(info, s.selectionSet, visit);
    else {
      const fragment = info.fragments[s.name.value];
      if (fragment) forEachField(info, fragment.selectionSet, visit);
    }
  }
}

/**
 * The properties a set of GraphQL fields needs: a field named like a property selects it, a field in
 * `needs` selects the listed properties (e.g. `customer` → customerId), `__typename` nothing; any
 * other field (or no selection) → undefined = every column, so an unforeseen field is never
 * served from a missing column. `always` (id, createdAt: keys and cursors) is always included.
 */
export function propsFor(
  em: EntityManager,
  entity: EntityName<any>,
  fields: ReadonlySet<string> | null,
  needs: Record<string, readonly string[]> = {},
  always: readonly string[] = ['id', 'createdAt'],
): string[] | undefined {
  if (!fields) return [...always];
  const meta = metaOf(em, entity);
  const props = new Set(always);
  for (const f of fields) {
    if (f === '__typename') continue;
    if (needs[f]) needs[f].forEach((p) => props.add(p));
    else if (meta.properties[f]?.fieldNames?.length) props.add(f);
    else return undefined;
  }
  return [...props].sort();
}

/** Whether a connection field asks only for `totalCount` (so no row needs to be read). */
export function onlyTotalCount(info: GraphQLResolveInfo): boolean {
  const fields = selectedFields(info);
  return !!fields && fields.has('totalCount') && [...fields].every((f) => f === 'totalCount' || f === '__typename');
}

/** The properties a connection field's nodes need (`edges { node { … } }`), as propsFor. */
export const connectionProps = (em: EntityManager, entity: EntityName<any>, info: GraphQLResolveInfo, needs: Record<string, readonly string[]> = {}): string[] | undefined =>
  propsFor(em, entity, selectedFields(info, ['edges', 'node']), needs);

/** Whether a connection field selects `totalCount` (else paginate need not count). */
export const wantsTotalCount = (info: GraphQLResolveInfo): boolean => selectedFields(info)?.has('totalCount') ?? true;
