/**
 * The order the resumable live feed reads (`notificationAdded(after:)`, docs/subscriptions.md): one
 * recipient's notifications commit in `seq` order, so "after seq N" never skips one that commits later
 * with a smaller seq; and the gateway-internal positions query gives the caller's own, oldest first,
 * refusing an `after` that is not theirs. Real Postgres in CI.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { startTestSubgraph, type TestCaller, type TestSubgraph } from '@crm/testing';
import { analyticsSubgraph } from '../src';
import { isTransient } from '@crm/events';
import { notifyAll } from '../src/notify';
import { code, eventually, newUsers, randomUUID, sql } from './helpers';

let an: TestSubgraph;
let rep: TestCaller;
let other: TestCaller;

beforeAll(async () => {
  an = await startTestSubgraph(analyticsSubgraph);
  [rep, other] = (await newUsers(an, 'SALES', 'SALES')) as [TestCaller, TestCaller];
}, 300_000);
afterAll(async () => {
  await an?.stop();
});

const notice = (recipientId: string, title: string) => ({ recipientId, type: 'SYSTEM' as const, title, sourceEventId: randomUUID() });
const POSITIONS = 'query($after: ID, $afterSeq: String, $first: Int!) { liveNotificationPositions(after: $after, afterSeq: $afterSeq, first: $first) { id seq } }';
/** A promise and the function that fulfils it: one step of a test waits for another's. */
const latch = () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
};

test("two transactions notifying one recipient commit in seq order: the second waits for the first's lock", async () => {
  const { open: releaseFirst, opened: firstHolds } = latch();
  const { open: firstInserted, opened: inserted } = latch();
  const orm = an.db.orm;
  const first = orm.em.fork().transactional(async (em) => {
    const [n] = await notifyAll(em, [notice(rep.id, 'first')]);
    firstInserted();
    await firstHolds; // still uncommitted while the second one tries
    return n!.id;
  });
  await inserted;
  const second = orm.em.fork().transactional(async (em) => (await notifyAll(em, [notice(rep.id, 'second')]))[0]!.id);
  // The second transaction waits on the recipient's advisory lock (not yet holding a seq of its own).
  try {
    await eventually(async () => {
      const rows = await sql<{ n: number }>(
        an,
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return Number(rows[0]?.n) === 1;
    });
  } finally {
    releaseFirst();
  }
  const [a, b] = await Promise.all([first, second]);
  const rows = await sql<{ id: string; seq: string }>(an, 'SELECT id, seq::text AS seq FROM notifications WHERE id IN (?, ?)', [a, b]);
  const seq = (id: string) => BigInt(rows.find((r) => r.id === id)!.seq);
  expect(seq(b) > seq(a)).toBe(true);
});

test("positions: the caller's own after the one named, oldest first; another's or an unknown id is BAD_USER_INPUT", async () => {
  const em = an.db.orm.em.fork();
  const mine = await em.transactional(async (tx) =>
    notifyAll(
      tx,
      Array.from({ length: 12 }, (_, i) => notice(rep.id, `n${i}`)),
    ),
  );
  const [theirs] = await em.transactional(async (tx) => notifyAll(tx, [notice(other.id, 'theirs')]));
  const byRep = await an.call(rep.identity, POSITIONS, { after: mine[0]!.id, first: 5 });
  expect(byRep.errors).toBeUndefined();
  expect(byRep.data.liveNotificationPositions.map((p: { id: string }) => p.id)).toEqual(mine.slice(1, 6).map((n) => n.id));
  const next = await an.call(rep.identity, POSITIONS, { afterSeq: byRep.data.liveNotificationPositions[4].seq, first: 50 });
  expect(next.data.liveNotificationPositions.map((p: { id: string }) => p.id)).toEqual(mine.slice(6).map((n) => n.id));
  // A cursor that was archived since (e.g. its customer deleted) still marks the place; archived ones are not listed.
  await sql(an, 'UPDATE notifications SET archived_at = now() WHERE id IN (?, ?)', [mine[0]!.id, mine[2]!.id]);
  const afterArchived = await an.call(rep.identity, POSITIONS, { after: mine[0]!.id, first: 3 });
  expect(afterArchived.data.liveNotificationPositions.map((p: { id: string }) => p.id)).toEqual([mine[1]!.id, mine[3]!.id, mine[4]!.id]);
  for (const after of [theirs!.id, randomUUID(), 'nope']) {
    const r = await an.call(rep.identity, POSITIONS, { after, first: 5 });
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(r.errors![0]!.message).toContain('is not one of your notifications');
  }
  expect(code(await an.call(rep.identity, POSITIONS, { first: 5 }))).toBe('BAD_USER_INPUT'); // neither after nor afterSeq
  expect(code(await an.call(null, POSITIONS, { after: mine[0]!.id, first: 5 }))).toBe('UNAUTHENTICATED');
});

test('a batch waiting for a recipient lock holds no event_metrics row: counts are written at commit, so two batches cannot deadlock', async () => {
  // Two events of one partition in one batch: the first notifies one recipient, the second another, whose
  // lock this test holds. The batch then waits for that lock; before the fix it already held
  // event_metrics('task.due_soon') (counted right after the first event), and another batch holding
  // the second recipient and counting the same type closed the cycle: "deadlock detected".
  const dueSoon = (assigneeId: string, title: string) => ({
    taskId: randomUUID(),
    title,
    assigneeId,
    customerId: null,
    status: 'TODO' as const,
    priority: 'HIGH' as const,
    dueAt: new Date(Date.now() + 3600_000).toISOString(),
  });
  const lockOf = (userId: string) => `notifications:${userId.toLowerCase()}`;
  const holdLock = (userId: string, then?: (em: EntityManager) => Promise<void>) => {
    const { open: release, opened: released } = latch();
    const { open: holding, opened: held } = latch();
    const done = an.db.orm.em.fork().transactional(async (em) => {
      await em.execute(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, [lockOf(userId)]);
      holding();
      await released;
      await then?.(em);
    });
    return { held, release, done };
  };
  const waitingPid = () =>
    eventually(async () => {
      const rows = await sql<{ pid: number }>(
        an,
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return rows[0]?.pid;
    });
  const count = async () => BigInt((await sql<{ count: string }>(an, `SELECT coalesce(max(count), 0)::text AS count FROM event_metrics WHERE type = 'task.due_soon'`))[0]!.count);

  const key = randomUUID();
  // the second recipient sorts after the first: its lock is taken in order, so the batch waits for it (not a lock timeout)
  const [firstUser, secondUser] = [randomUUID(), randomUUID()].sort() as [string, string];
  const gateUser = randomUUID();
  const before = await count();
  // The gate keeps the partition's worker busy (its first event waits for the gate's lock), so the
  // two events delivered meanwhile queue up and come as one batch when it opens.
  const gate = holdLock(gateUser);
  await gate.held;
  const holder = holdLock(secondUser, async (em) => {
    // what another batch counting the same type does while it still holds the second recipient's lock
    await em.execute(`SET LOCAL lock_timeout = '5s'`);
    await em.execute(`UPDATE event_metrics SET count = count WHERE type = 'task.due_soon'`);
  });
  await holder.held;
  const opening = an.envelope('task.due_soon', key, dueSoon(gateUser, 'opening'));
  const first = an.envelope('task.due_soon', key, dueSoon(firstUser, 'first'));
  const second = an.envelope('task.due_soon', key, dueSoon(secondUser, 'second'));
  let metricsLocks = -1;
  try {
    await an.deliver(opening);
    await waitingPid();
    await an.deliver(first, second);
    await new Promise((r) => setTimeout(r, 2000)); // both fetched and queued behind the gate (a fetch returns as soon as records arrive)
    gate.release();
    await gate.done;
    // the batch [first, second] waits for the second recipient's lock…
    const pid = await eventually(async () => {
      const rows = await sql<{ pid: number }>(
        an,
        `SELECT pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'notifications' AND l.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`,
      );
      return rows[0]?.pid;
    });
    // …holding no lock on event_metrics
    const rows = await sql<{ n: number }>(an, `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = ? AND c.relname = 'event_metrics'`, [
      pid,
    ]);
    metricsLocks = Number(rows[0]?.n);
  } finally {
    gate.release();
    holder.release();
  }
  await holder.done; // its update did not wait for the batch: no lock timeout, no deadlock
  expect(metricsLocks).toBe(0);
  await eventually(
    async () =>
      Number((await sql<{ n: number }>(an, 'SELECT count(*)::int AS n FROM notifications WHERE source_event_id IN (?, ?, ?)', [opening.id, first.id, second.id]))[0]?.n) === 3,
  );
  await eventually(async () => (await count()) - before === 3n);
});

test('two batches locking two recipients in opposite orders do not deadlock: the one out of order gives way (lock timeout, retried)', async () => {
  // Batch 1 notifies `high` then `low`; batch 2 `low` then `high`. Before, batch 1 waited for `low`
  // while batch 2 waited for `high`: Postgres broke the cycle after its deadlock timeout (1 s) by
  // aborting one with "deadlock detected". Now a lock taken out of key order waits briefly and gives
  // way with a lock timeout (a transient failure: the consumer retries the batch), so the batch that
  // took its locks in order goes on.
  const [low, high] = [randomUUID(), randomUUID()].sort();
  const steps: string[] = [];
  const { open: signal, opened: batch1HoldsHigh } = latch();
  const { open: go, opened: batch2WaitsForHigh } = latch();
  const orm = an.db.orm;
  const batch1 = orm.em.fork().transactional(async (em) => {
    await notifyAll(em, [notice(high!, 'batch 1, first')]);
    signal();
    await batch2WaitsForHigh;
    await notifyAll(em, [notice(low!, 'batch 1, second')]); // out of order: low < high
    steps.push('batch 1 done');
  });
  const outcome1 = batch1.then(
    () => 'committed',
    (err: unknown) => err,
  );
  await batch1HoldsHigh;
  const batch2 = orm.em.fork().transactional(async (em) => {
    await notifyAll(em, [notice(low!, 'batch 2, first')]);
    const waiting = notifyAll(em, [notice(high!, 'batch 2, second')]); // in order: waits for batch 1
    go();
    await waiting;
    steps.push('batch 2 done');
  });
  const outcome2 = await batch2.then(
    () => 'committed',
    (err: unknown) => err,
  );
  const first = await outcome1;
  expect(outcome2).toBe('committed');
  expect(first).not.toBe('committed');
  expect((first as { code?: string }).code).toBe('55P03'); // lock_not_available: a transient failure, retried
  expect(isTransient(first)).toBe(true);
  expect(steps).toEqual(['batch 2 done']);
});
