/**
 * The order the resumable live feed reads (`notificationAdded(after:)`, docs/subscriptions.md): one
 * recipient's notifications commit in `seq` order, so "after seq N" never skips one that commits later
 * with a smaller seq; and the gateway-internal positions query gives the caller's own, oldest first,
 * refusing an `after` that is not theirs. Real Postgres in CI.
 */
import { startTestSubgraph, type TestCaller, type TestSubgraph } from '@crm/testing';
import { analyticsSubgraph } from '../src';
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

test("two transactions notifying one recipient commit in seq order: the second waits for the first's lock", async () => {
  let releaseFirst!: () => void;
  const firstHolds = new Promise<void>((r) => (releaseFirst = r));
  let firstInserted!: () => void;
  const inserted = new Promise<void>((r) => (firstInserted = r));
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
