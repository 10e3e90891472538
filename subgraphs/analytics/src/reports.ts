/**
 * Reports, computed only from analytics' own projections (one SQL statement each) and cached for
 * 5 minutes. Cache keys carry the versions of the projections a report reads; every handler that
 * changes a projection bumps its version in the same transaction as the change, so once a change
 * is committed no reader can get a result cached before it. (A reader that read the old version
 * and computed on newer data only stores a fresher result under an old key: harmless.)
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { createCache, type Cache } from '@crm/runtime';
import { type Logger } from '@crm/telemetry';
import { type PlatformConfig } from '@crm/config';
import type { Projection } from './events/handlers';

export const REPORT_TTL_SECONDS = 300;

const caches = new WeakMap<PlatformConfig, Cache>();

/** The cache of this subgraph instance (created on start; keyed by its config object). */
export function cacheFor(config: PlatformConfig, logger?: Logger): Cache {
  let cache = caches.get(config);
  if (!cache) {
    cache = createCache(config, 'analytics', logger ? { logger } : {});
    caches.set(config, cache);
  }
  return cache;
}

export async function closeCache(config: PlatformConfig): Promise<void> {
  const cache = caches.get(config);
  caches.delete(config);
  await cache?.close();
}

export async function cachedReport<T>(em: EntityManager, cache: Cache, report: string, deps: Projection[], args: Record<string, unknown>, compute: () => Promise<T>): Promise<T> {
  const rows = await em.execute<{ name: string; version: string }[]>(`SELECT name, version::text AS version FROM report_versions WHERE name = ANY(string_to_array(?, ','))`, [
    deps.join(','),
  ]);
  const versions = deps.map((d) => rows.find((r) => r.name === d)?.version ?? '0').join('.');
  const key = `report:${report}:v${versions}:${JSON.stringify(args)}`;
  const hit = await cache.get<T>(key);
  if (hit !== undefined) return hit;
  const value = await compute();
  await cache.set(key, value, REPORT_TTL_SECONDS);
  return value;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export async function salesSummary(em: EntityManager, from: Date, to: Date) {
  const w = [from, to];
  const [row] = await em.execute<Record<string, number | string | null>[]>(
    `SELECT
       (SELECT count(*) FROM customer_facts WHERE created_at >= ? AND created_at < ?)::int AS customers_created,
       (SELECT count(*) FROM meeting_facts WHERE NOT deleted AND starts_at >= ? AND starts_at < ?)::int AS meetings_held,
       (SELECT count(*) FROM task_facts WHERE created_at >= ? AND created_at < ?)::int AS tasks_created,
       (SELECT count(*) FROM task_facts WHERE status = 'COMPLETED' AND completed_at >= ? AND completed_at < ?)::int AS tasks_completed,
       (SELECT count(*) FROM approval_facts WHERE requested_at >= ? AND requested_at < ?)::int AS approvals_requested,
       (SELECT count(*) FROM approval_facts WHERE status = 'APPROVED' AND decided_at >= ? AND decided_at < ?)::int AS approvals_approved,
       (SELECT COALESCE(sum(amount), 0) FROM approval_facts WHERE status = 'APPROVED' AND decided_at >= ? AND decided_at < ?)::float8 AS approved_amount`,
    [...w, ...w, ...w, ...w, ...w, ...w, ...w],
  );
  return {
    from: iso(from),
    to: iso(to),
    customersCreated: Number(row?.customers_created ?? 0),
    meetingsHeld: Number(row?.meetings_held ?? 0),
    tasksCreated: Number(row?.tasks_created ?? 0),
    tasksCompleted: Number(row?.tasks_completed ?? 0),
    approvalsRequested: Number(row?.approvals_requested ?? 0),
    approvalsApproved: Number(row?.approvals_approved ?? 0),
    approvedAmount: Number(row?.approved_amount ?? 0),
  };
}

/** Keys of customers without a size / investment profile. */
export const UNSPECIFIED = 'UNSPECIFIED';

export async function customerStats(em: EntityManager) {
  const rows = await em.execute<{ size: string | null; profile: string | null; gs: number; gp: number; n: number; unassigned: number }[]>(
    `SELECT size, investment_profile AS profile, grouping(size)::int AS gs, grouping(investment_profile)::int AS gp,
            count(*)::int AS n, (count(*) FILTER (WHERE assigned_rep_id IS NULL))::int AS unassigned
     FROM customer_facts WHERE NOT deleted
     GROUP BY GROUPING SETS ((size), (investment_profile), ())`,
  );
  const total = rows.find((r) => Number(r.gs) === 1 && Number(r.gp) === 1);
  const byKey = (pick: (r: (typeof rows)[number]) => string | null, rowsOf: typeof rows) =>
    rowsOf.map((r) => ({ key: pick(r) ?? UNSPECIFIED, count: Number(r.n) })).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
  return {
    total: Number(total?.n ?? 0),
    bySize: byKey(
      (r) => r.size,
      rows.filter((r) => Number(r.gs) === 0),
    ),
    byInvestmentProfile: byKey(
      (r) => r.profile,
      rows.filter((r) => Number(r.gp) === 0),
    ),
    unassigned: Number(total?.unassigned ?? 0),
  };
}

export async function approvalStats(em: EntityManager, from: Date | null, to: Date | null) {
  const [row] = await em.execute<Record<string, number | string | null>[]>(
    `SELECT
       (count(*) FILTER (WHERE status = 'PENDING'))::int AS pending,
       (count(*) FILTER (WHERE status = 'APPROVED'))::int AS approved,
       (count(*) FILTER (WHERE status = 'REJECTED'))::int AS rejected,
       (count(*) FILTER (WHERE status = 'RECALLED'))::int AS recalled,
       (count(*) FILTER (WHERE status = 'CANCELLED'))::int AS cancelled,
       (avg(extract(epoch FROM decided_at - requested_at)) FILTER (WHERE status IN ('APPROVED', 'REJECTED') AND decided_at IS NOT NULL))::float8 AS mean
     FROM approval_facts
     WHERE (?::timestamptz IS NULL OR requested_at >= ?) AND (?::timestamptz IS NULL OR requested_at < ?)`,
    [from, from, to, to],
  );
  return {
    pending: Number(row?.pending ?? 0),
    approved: Number(row?.approved ?? 0),
    rejected: Number(row?.rejected ?? 0),
    recalled: Number(row?.recalled ?? 0),
    cancelled: Number(row?.cancelled ?? 0),
    meanDecisionSeconds: row?.mean === null || row?.mean === undefined ? null : Number(row.mean),
  };
}

export async function taskCompletion(em: EntityManager, from: Date | null, to: Date | null, assigneeId: string | null) {
  const [row] = await em.execute<{ total: number; completed: number }[]>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE status = 'COMPLETED'))::int AS completed
     FROM task_facts
     WHERE status <> 'CANCELLED'
       AND (?::timestamptz IS NULL OR created_at >= ?) AND (?::timestamptz IS NULL OR created_at < ?)
       AND (?::text IS NULL OR assignee_id = ?)`,
    [from, from, to, to, assigneeId, assigneeId],
  );
  const total = Number(row?.total ?? 0);
  const completed = Number(row?.completed ?? 0);
  return { total, completed, rate: total === 0 ? 0 : completed / total };
}

export async function eventMetrics(em: EntityManager) {
  const rows = await em.execute<{ type: string; count: string }[]>('SELECT type, count::text AS count FROM event_metrics ORDER BY type');
  return rows.map((r) => ({ key: r.type, count: Number(r.count) }));
}
