/** Customer domain helpers shared by resolvers and event handlers. */
import { raw, type EntityManager, type FilterQuery } from '@mikro-orm/postgresql';
import type { EventData } from '@crm/events';
import { ownerFirst, type Peers } from '@crm/runtime';
import { Customer, Rep } from './entities';

/** The steps that complete the customer-deletion saga (docs/events-and-sagas.md). */
export const CUSTOMER_DELETION_STEPS = ['customer.soft-delete', 'sales-activity.remove-activities', 'opportunity.cancel-requests', 'analytics.archive-notifications'];

export function customerEventData(c: Customer): EventData<'customer.created'> {
  return {
    customerId: c.id,
    name: c.name,
    assignedRepId: c.assignedRepId,
    size: c.size,
    investmentProfile: c.investmentProfile,
  };
}

/** Live (not soft-deleted) customer by id, or null. */
export const findLiveCustomer = (em: EntityManager, id: string) => em.findOne(Customer, { id, deletedAt: null });

/** An active SALES rep of the local directory, or null. */
export const findActiveRep = (em: EntityManager, id: string) => em.findOne(Rep, { id, active: true });

interface UserData {
  userId: string;
  name: string;
  email: string;
  role: string;
  active: boolean;
  approved?: boolean;
}
/**
 * A user snapshot (user.* event or auth's answer) as a directory row: active only for active SALES
 * users; approved as an ADMIN or MANAGER approved them (older events lack it: not approved).
 */
export const repFromUser = (u: UserData) => ({ id: u.userId, name: u.name, email: u.email, active: u.role === 'SALES' && u.active, approved: u.approved ?? false });

/**
 * An active SALES rep, as auth (the owner) says now; its answer is stored in the directory. The
 * directory lags auth both ways (a rep created or promoted a moment ago, or deactivated, deleted or
 * given another role a moment ago), so it decides alone only when auth cannot be asked.
 */
export async function requireActiveRep(em: EntityManager, peers: Peers, id: string): Promise<Rep | null> {
  const ask = async (): Promise<Rep | null | undefined> => {
    const user = await peers.entity<{ id: string; name: string; email: string; role: string; active: boolean; approved: boolean }>(
      'auth',
      'User',
      id,
      'id name email role active approved',
    );
    if (!user) return user;
    await upsertRep(em, repFromUser({ ...user, userId: user.id }));
    return em.findOne(Rep, { id, active: true }, { refresh: true });
  };
  return ownerFirst(
    ask,
    () => findActiveRep(em, id),
    (rep) => rep !== null,
  );
}

interface RepRow {
  id: string;
  name: string;
  email: string;
  active: boolean;
  approved: boolean;
  version?: number | null;
}

/** Inserts or refreshes a directory row. */
export async function upsertRep(em: EntityManager, rep: RepRow): Promise<void> {
  await upsertReps(em, [rep]);
}

/**
 * Inserts or refreshes directory rows with one statement (distinct ids: see `roundsByKey`). A row
 * from a user.* event carries the user's aggregate version and changes the row only if newer than
 * the one it holds: a late redelivery or a replayed dead letter cannot roll the directory back
 * (e.g. list a MANAGER as a SALES rep again). A row without a version (auth's answer to a
 * read-through, the owner's current state) keeps the stored version.
 */
export async function upsertReps(em: EntityManager, reps: RepRow[]): Promise<void> {
  if (reps.length === 0) return;
  await em.execute(
    `INSERT INTO reps (id, name, email, active, approved, created_at, updated_at, version) VALUES ${reps.map(() => '(?, ?, ?, ?, ?, now(), now(), ?::bigint)').join(', ')}
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, active = excluded.active,
       approved = excluded.approved, updated_at = now(), version = COALESCE(excluded.version, reps.version)
     WHERE excluded.version IS NULL OR reps.version IS NULL OR reps.version < excluded.version`,
    reps.flatMap((rep) => [rep.id, rep.name, rep.email, rep.active, rep.approved, rep.version ?? null]),
  );
}

/**
 * Active, approved SALES reps other than `excludeId` with their number of live customers, least
 * loaded first (ties: oldest directory entry first). Self-registered accounts nobody approved never
 * receive another rep's customers.
 */
export async function repLoads(em: EntityManager, excludeId: string): Promise<{ id: string; load: number }[]> {
  const rows = await em.execute<{ id: string; load: string | number }[]>(
    `SELECT r.id, count(c.id) AS load
       FROM reps r
       LEFT JOIN customers c ON c.assigned_rep_id = r.id AND c.deleted_at IS NULL
      WHERE r.active AND r.approved AND r.id <> ?
      GROUP BY r.id, r.created_at
      ORDER BY count(c.id), r.created_at, r.id`,
    [excludeId],
  );
  return rows.map((r) => ({ id: r.id, load: Number(r.load) }));
}

/** `%term%` with LIKE's wildcards escaped, so the term matches literally. */
const likePattern = (term: string) => `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * What `customers(search:)` reads: name, email and phone joined by U+0001 — the expression of the
 * trigram index customers_search_trgm (Migration20261207000210; keep the two identical, or the
 * index is not used). A term without U+0001 cannot match across a separator, so
 * `SEARCH_TEXT ILIKE '%term%'` selects exactly the rows whose name, email or phone contains the
 * term: one index scan (or one ILIKE per row) instead of three.
 */
export const SEARCH_TEXT = (alias: string) => `(${alias}.name || E'\\x01' || coalesce(${alias}.email, '') || E'\\x01' || coalesce(${alias}.phone, ''))`;
const SEARCH_SEPARATOR = '\u0001';

/**
 * The filter of `customers(search:)`: name, email or phone contains the term, case-insensitively
 * (ILIKE), LIKE wildcards literal. Build it per statement: its raw() key serves one statement.
 */
export function searchFilter(term: string): FilterQuery<Customer> {
  const pattern = likePattern(term);
  if (term.includes(SEARCH_SEPARATOR)) {
    // (never typed in practice) a term with the separator could match across two columns of SEARCH_TEXT
    return { $or: [{ name: { $ilike: pattern } }, { email: { $ilike: pattern } }, { phone: { $ilike: pattern } }] };
  }
  return { [raw(SEARCH_TEXT)]: { $ilike: pattern } };
}
