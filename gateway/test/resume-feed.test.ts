/**
 * A resumed feed's catch-up (./resume.ts) without sockets or subgraphs: the positions source is a list
 * that grows while the feed runs. Everything after the cursor is delivered once, in order — also what
 * lands during a catch-up (a wake then runs another), across pages, and after a failed read (retried
 * from the same cursor). A refused cursor ends the subscription. (e2e/live-resume.test.ts: the real path.)
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '@crm/telemetry';
import { eventually } from '@crm/testing';
import { LiveQueue } from '../src/features/subscriptions/queue';
import { PAGE, ResumableFeed, ResumeRefused, type Cursor, type Position } from '../src/features/subscriptions/resume';
import { LIVE_FIELDS } from '../src/features/subscriptions/topics';
import type { LiveOperation } from '../src/features/subscriptions/operation';

const op: LiveOperation = { field: LIVE_FIELDS.find((f) => f.field === 'notificationAdded')!, responseKey: 'n', query: 'unused', variables: {}, shareKey: 'x' };
const me = { userId: randomUUID(), role: 'SALES' as const, email: 'me@test.local' };
const logger = createLogger('test', 'silent');

function setup(options: { failOnce?: boolean; refuse?: boolean } = {}) {
  const stored: Position[] = [];
  let seq = 0;
  const add = (n = 1) => {
    for (let i = 0; i < n; i++) stored.push({ id: randomUUID(), seq: String(++seq) });
  };
  let reads = 0;
  let failed = false;
  let onRead: () => void = () => {};
  const positions = async (_f: unknown, _i: unknown, cursor: Cursor, first: number) => {
    reads += 1;
    if (options.refuse) throw new ResumeRefused('after: x is not one of your notifications', { extensions: { code: 'BAD_USER_INPUT' } });
    if (options.failOnce && !failed && reads === 2) {
      failed = true;
      throw new Error('analytics away');
    }
    const from = 'after' in cursor ? Number(stored.find((p) => p.id === cursor.after)!.seq) : Number(cursor.afterSeq);
    const page = stored.filter((p) => Number(p.seq) > from).slice(0, first);
    onRead(); // after the page was read: what lands now is not in it
    return page;
  };
  const got: string[] = [];
  let ended = false;
  const queue = new LiveQueue({ limit: 100, maxBufferedBytes: 1_000_000, buffered: () => 0, onOverflow: () => {}, onEnd: () => (ended = true) });
  const reading = (async () => {
    for await (const r of queue) got.push((r.data as { n: { id: string } }).n.id);
  })();
  add(1); // the one the client names
  const feed = new ResumableFeed({
    op,
    identity: me,
    queue,
    cursor: { after: stored[0]!.id },
    positions,
    resolve: async (_o, _i, id) => ({ data: { n: { id } } }),
    resolveTimeoutMs: 5_000,
    counted: () => {},
    logger,
  });
  return { stored, add, feed, got, queue, reading, ended: () => ended, setOnRead: (f: () => void) => (onRead = f) };
}

test('backfill across pages, then what lands during a catch-up and later: each once, in order', async () => {
  const s = setup();
  s.add(PAGE * 2 + 7);
  let reads = 0;
  // Two more land during the first catch-up's last read (its short page does not hold them); their
  // events wake the feed while it runs: it must catch up once more.
  s.setOnRead(() => {
    if (++reads === 3) {
      s.add(2);
      s.feed.wake();
      s.feed.wake();
    }
  });
  s.feed.wake();
  await eventually(async () => s.got.length === PAGE * 2 + 9);
  s.add(3);
  s.feed.wake();
  await eventually(async () => s.got.length === PAGE * 2 + 12);
  expect(s.got).toEqual(s.stored.slice(1).map((p) => p.id));
  s.feed.close();
  s.queue.end();
  await s.reading;
});

test('a failed read is retried from the same cursor: nothing skipped, nothing twice', async () => {
  const s = setup({ failOnce: true });
  s.add(5);
  s.feed.wake();
  await eventually(async () => s.got.length === 5);
  s.add(2);
  s.feed.wake(); // this read fails; the retry (backoff) reads from the same cursor
  await eventually(async () => s.got.length === 7);
  expect(s.got).toEqual(s.stored.slice(1).map((p) => p.id));
  s.feed.close();
  s.queue.end();
  await s.reading;
});

test('a refused cursor ends the subscription', async () => {
  const s = setup({ refuse: true });
  s.feed.wake();
  await eventually(async () => s.ended());
  await s.reading;
  expect(s.got).toEqual([]);
});
