/**
 * Writes whose change emits an event read the aggregate under the write's own lock, so an event's
 * snapshot is the state the owner commits, never one built from a row another writer changed in
 * the meantime. `writeAggregate` runs the write in one transaction; inside it `loadForWrite` reads
 * the aggregate's row `SELECT … FOR UPDATE` (fresh from the database: a writer that committed
 * first is seen, one that comes second waits for this commit). The event's aggregate version is
 * bumped by the outbox insert of that same transaction (`outbox_stamp`, kit-migration.ts), which
 * comes after the row lock: versions follow the order of the row's writes, and every copy applies
 * only a newer version (a redelivery or a replayed dead letter changes nothing).
 *
 * Lock order, for every writer of an aggregate: its row first, then (by the outbox insert) its
 * version counter. A deadlock or serialization failure anyway (two aggregates locked in opposite
 * orders) is retried a few times; nothing was committed by the failed attempt.
 */
import { LockMode, type EntityManager, type EntityName, type FilterQuery } from '@mikro-orm/postgresql';
import { retry } from '@crm/errors';

/** The aggregate's row locked for this transaction (FOR UPDATE) and read fresh; null when none matches. Needs a transaction. */
export function loadForWrite<T extends object>(em: EntityManager, entity: EntityName<T>, where: FilterQuery<T>): Promise<T | null> {
  return em.findOne(entity, where, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
}

/** Every row of `where` locked for this transaction (FOR UPDATE, in `orderBy` order: one lock order). */
export function loadAllForWrite<T extends object>(em: EntityManager, entity: EntityName<T>, where: FilterQuery<T>, orderBy: Record<string, 'asc' | 'desc'>): Promise<T[]> {
  return em.find(entity, where, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true, orderBy } as never);
}

const RETRYABLE = new Set(['40P01', '40001']);
const lockConflict = (err: unknown): boolean => {
  const e = err as { code?: unknown; sqlState?: unknown; name?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (RETRYABLE.has(String(e.code)) || RETRYABLE.has(String(e.sqlState)) || e.name === 'DeadlockException') return true;
  return e.cause !== undefined && e.cause !== err && lockConflict(e.cause);
};

/** Runs `fn` in one transaction on a fork of `em` (its flush commits with it), retried after a deadlock or serialization failure. */
export function writeAggregate<R>(em: EntityManager, fn: (tx: EntityManager) => Promise<R>): Promise<R> {
  return retry(() => em.transactional((tx) => fn(tx)), {
    retries: 4,
    baseDelayMs: 20,
    maxDelayMs: 500,
    shouldRetry: (err) => lockConflict(err),
  });
}
