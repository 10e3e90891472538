/**
 * The live hub without sockets: audience filter before resolution, one resolution per group of
 * identical subscriptions, and backpressure — a client that does not read is dropped at its queue
 * bound (or socket buffer bound) while the others keep receiving everything.
 */
import { randomUUID } from 'node:crypto';
import type { ExecutionResult } from 'graphql';
import { MemoryBus } from '@crm/events';
import { createLogger } from '@crm/telemetry';
import { eventually } from '@crm/testing';
import { LiveHub } from '../src/features/subscriptions/hub';
import { LiveQueue } from '../src/features/subscriptions/queue';
import { LIVE_FIELDS } from '../src/features/subscriptions/topics';
import type { LiveOperation } from '../src/features/subscriptions/operation';
import { notificationMessage as notification } from './support/live-events';

const notificationAdded = LIVE_FIELDS.find((f) => f.field === 'notificationAdded')!;
const me = { userId: randomUUID(), role: 'SALES' as const, email: 'me@test.local' };
const op: LiveOperation = { field: notificationAdded, responseKey: 'notificationAdded', query: 'unused', variables: {}, shareKey: 'same' };

/** A hub on `bus` whose resolutions are `resolve`. */
const liveHub = (bus: MemoryBus, resolve: ConstructorParameters<typeof LiveHub>[0]['resolve']) =>
  new LiveHub({ bus, resolve, logger: createLogger('test', 'silent'), concurrency: 4, resolveTimeoutMs: 10_000, fields: LIVE_FIELDS });

async function drain(queue: LiveQueue, into: ExecutionResult[]) {
  for await (const r of queue) into.push(r);
}

test('a slow subscriber is closed at its bound; the others get every event; identical subscriptions share one resolution', async () => {
  const bus = new MemoryBus();
  let resolutions = 0;
  const hub = liveHub(bus, async (_op, _identity, entityId) => {
    resolutions += 1;
    return { data: { notificationAdded: { id: entityId } } };
  });
  await hub.start();
  const overflows: string[] = [];
  const queue = (limit: number, buffered = 0) => {
    let unregister = () => {};
    const q = new LiveQueue({ limit, maxBufferedBytes: 1_000_000, buffered: () => buffered, onOverflow: (why) => overflows.push(why), onEnd: () => unregister() });
    unregister = hub.add(op, me, q);
    return q;
  };
  const fast = queue(5);
  const slow = queue(5); // never read
  const fastResults: ExecutionResult[] = [];
  const reading = drain(fast, fastResults);

  await bus.publish([notification(randomUUID())]); // someone else's: filtered before any resolution
  const mine = Array.from({ length: 20 }, () => notification(me.userId));
  for (const m of mine) await bus.publish([m]);

  await eventually(async () => fastResults.length === 20);
  expect(fastResults.map((r) => (r.data as { notificationAdded: { id: string } }).notificationAdded.id)).toEqual(mine.map((m) => m.key));
  expect(overflows).toEqual(['queue']);
  expect(slow.closed).toBe(true);
  expect(resolutions).toBe(20); // one per event for both members of the group, none for the other user's
  expect(hub.snapshot()).toMatchObject({ subscriptions: 1, groups: 1, dropped: 1 });

  // a socket with too many bytes buffered is dropped too, at its first queued event
  const buffered = queue(100, 2_000_000);
  await bus.publish([notification(me.userId), notification(me.userId)]);
  await eventually(async () => buffered.closed);
  expect(overflows).toEqual(['queue', 'buffer']);
  await eventually(async () => fastResults.length === 22);

  fast.end();
  await reading;
  expect(hub.snapshot().subscriptions).toBe(0);
  await hub.stop();
  await bus.close();
});

test("writing to sockets: a group's result is serialized once for all its members; a socket that does not take its writes is closed at its bound", async () => {
  const bus = new MemoryBus();
  let serialized = 0;
  // toJSON runs once per JSON.stringify of the result: it counts serializations.
  const hub = liveHub(bus, async (_op, _identity, entityId) => ({ data: { notificationAdded: { id: entityId, toJSON: () => ((serialized += 1), { id: entityId }) } } }));
  await hub.start();
  const overflows: string[] = [];
  const writer = (limit: number, takes: boolean) => {
    const written: string[] = [];
    let unregister = () => {};
    const q = new LiveQueue({
      limit,
      maxBufferedBytes: 1_000_000,
      buffered: () => 0,
      send: (json, done) => {
        written.push(json);
        if (takes) done(); // a stuck socket never calls done
      },
      onOverflow: (why) => overflows.push(why),
      onEnd: () => unregister(),
    });
    unregister = hub.add(op, me, q);
    return { q, written };
  };
  const members = [writer(3, true), writer(3, true), writer(3, true)];
  const stuck = writer(3, false);

  const mine = Array.from({ length: 10 }, () => notification(me.userId));
  for (const m of mine) await bus.publish([m]);
  await eventually(async () => members.every((w) => w.written.length === 10));

  const expected = mine.map((m) => JSON.stringify({ data: { notificationAdded: { id: m.key } } }));
  for (const w of members) expect(w.written).toEqual(expected);
  expect(serialized).toBe(10); // once per event, not once per member
  // the stuck one: 1 write in flight + 3 queued, then closed at the 5th event
  expect(stuck.written).toEqual(expected.slice(0, 1));
  expect(stuck.q.closed).toBe(true);
  expect(overflows).toEqual(['queue']);

  for (const w of members) w.q.end();
  expect(hub.snapshot().subscriptions).toBe(0);
  await hub.stop();
  await bus.close();
});
