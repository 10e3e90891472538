/**
 * The event path's failure handling, on whichever bus and database the environment gives (real
 * Kafka and Postgres in CI): an infrastructure failure is held and retried, never dead-lettered;
 * a handler's own failure is isolated from the rest of its batch and dead-lettered; events from
 * a newer producer (unknown type, unknown enum value, unknown field) are tolerated; the envelope
 * version is checked; the outbox refuses and parks oversized events and versions each aggregate.
 */
import { randomUUID } from 'node:crypto';
import { buildEnvelope, pruneEventTables, startConsumer, type BatchHandler, type Consumer, type DeliveredMessage, type EventHandlers } from '@crm/events';
import { eventually } from '@crm/testing';
import { errorCode, startTestStack, type TestStack } from '@crm/platform';

let stack: TestStack;
const dead: DeliveredMessage[] = [];
const consumers: Consumer[] = [];

beforeAll(async () => {
  stack = await startTestStack({ only: ['auth'], env: { EVENT_MAX_BYTES: '4096' } });
  await stack.sql('auth', 'CREATE TABLE probe_effects (consumer text NOT NULL, event_id uuid NOT NULL, detail text)');
  await stack.bus.subscribe({
    groupId: `dlq-observer-${randomUUID()}`,
    topics: ['customer.events.dlq', 'user.events.dlq'],
    handle: async (m) => {
      dead.push(m);
    },
  });
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.stop()));
  await stack?.stop();
});

async function probe(handlers: EventHandlers, maxAttempts = 3): Promise<{ name: string; consumer: Consumer }> {
  const runtime = stack.subgraphs.auth!;
  const name = `probe-${randomUUID().slice(0, 8)}`;
  const consumer = await startConsumer({
    name,
    orm: runtime.db.orm,
    bus: stack.bus,
    logger: runtime.logger,
    config: runtime.config,
    runtime,
    handlers,
    maxAttempts,
    baseDelayMs: 10,
    maxDelayMs: 50,
  });
  consumers.push(consumer);
  return { name, consumer };
}

const effects = (name: string) => stack.sql<{ event_id: string; detail: string | null }>('auth', 'SELECT event_id, detail FROM probe_effects WHERE consumer = ?', [name]);
const record =
  (name: string, eventId: string, detail: string | null = null) =>
  async ({ em }: { em: { execute: (q: string, p: unknown[]) => Promise<unknown> } }) => {
    await em.execute('INSERT INTO probe_effects (consumer, event_id, detail) VALUES (?, ?, ?)', [name, eventId, detail]);
  };
const customerCreated = (customerId: string, name = 'Acme') =>
  buildEnvelope('customer', 'customer.created', customerId, { customerId, name, assignedRepId: null, size: null, investmentProfile: null }, { actorId: null });
const publish = (topic: string, ...values: unknown[]) => stack.bus.publish(values.map((v) => ({ topic, key: randomUUID(), value: typeof v === 'string' ? v : JSON.stringify(v) })));

test('an infrastructure failure holds the event and retries past maxAttempts: handled once, never dead-lettered', async () => {
  let failures = 0;
  let sawStalled = false;
  const { name, consumer } = await probe({
    'customer.created': async (ctx) => {
      if (ctx.event.data.name !== 'transient') return;
      if (failures < 30) {
        failures += 1;
        if (failures > 2) sawStalled ||= consumer.health().stalled !== null;
        throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      }
      await record(name, ctx.event.id)(ctx);
    },
  });
  const event = customerCreated(randomUUID(), 'transient');
  await publish('customer.events', event);
  await eventually(async () => (await effects(name)).length === 1, { timeoutMs: 30_000 });
  expect(failures).toBe(30); // far more than maxAttempts (3) and any count of retries: a transient failure is never counted against the event
  expect(sawStalled).toBe(true);
  expect(consumer.health().stalled).toBeNull();
  expect(consumer.health().deadLettered).toBe(0);
  expect(dead.filter((m) => m.headers['x-consumer'] === name)).toHaveLength(0);
});

test("a handler's own failure is isolated from its batch: the others are applied once, the failing one is dead-lettered", async () => {
  const { name } = await probe({
    'customer.created': async (ctx) => {
      if (ctx.event.data.name === 'poison') throw new Error('domain rule refuses this customer');
      await record(name, ctx.event.id)(ctx);
    },
  });
  const [a, poison, c] = [customerCreated(randomUUID()), customerCreated(randomUUID(), 'poison'), customerCreated(randomUUID())];
  await stack.bus.publish([a, poison, c].map((e) => ({ topic: 'customer.events', key: 'same-key', value: JSON.stringify(e) })));
  const ours = async () => (await effects(name)).map((e) => e.event_id).filter((id) => [a.id, poison.id, c.id].includes(id));
  await eventually(async () => (await ours()).length === 2, { timeoutMs: 30_000 });
  const letters = await eventually(async () => {
    const mine = dead.filter((m) => m.headers['x-consumer'] === name);
    return mine.length > 0 ? mine : undefined;
  });
  expect(letters).toHaveLength(1);
  expect(letters[0]!.headers['x-error']).toMatch(/customer.created failed after 3 attempts: domain rule refuses/);
  expect(JSON.parse(letters[0]!.value!.toString()).id).toBe(poison.id);
  expect((await ours()).sort()).toEqual([a.id, c.id].sort());
});

test('a batch handler gets the runs of new events in partition order; a failing event of a run is isolated and dead-lettered, a redelivery applies nothing', async () => {
  const runs: string[][] = [];
  const key = randomUUID();
  const copies: BatchHandler<'customer.created' | 'customer.updated'> = {
    async applyBatch(all, { em }) {
      const events = all.filter((e) => e.aggregateId === key); // (the topic holds other tests' events too)
      if (events.length === 0) return;
      runs.push(events.map((e) => e.data.name));
      if (events.some((e) => e.data.name === 'poison')) throw new Error('domain rule refuses this customer');
      await em.execute(
        `INSERT INTO probe_effects (consumer, event_id, detail) VALUES ${events.map(() => '(?, ?, ?)').join(', ')}`,
        events.flatMap((e) => [name, e.id, e.data.name]),
      );
    },
  };
  const { name, consumer } = await probe({ 'customer.created': copies, 'customer.updated': copies });
  const names = ['a', 'b', 'poison', 'c', 'd'];
  const events = names.map((n, i) =>
    i % 2
      ? buildEnvelope('customer', 'customer.updated', key, { customerId: key, name: n, assignedRepId: null, size: null, investmentProfile: null, changes: [] }, { actorId: null })
      : customerCreated(key, n),
  );
  const send = (es: typeof events) => stack.bus.publish(es.map((e) => ({ topic: 'customer.events', key, value: JSON.stringify(e) })));
  await send(events);
  const applied = async () => (await effects(name)).map((e) => e.detail);
  await eventually(async () => (await applied()).length === 4, { timeoutMs: 30_000 });
  expect((await applied()).sort()).toEqual(['a', 'b', 'c', 'd']);
  // every run in partition order; a run failed (the poison) and was re-applied one event at a time
  for (const run of runs) expect(run).toEqual(names.filter((n) => run.includes(n)));
  expect(runs.some((run) => run.includes('poison') && run.length > 1)).toBe(true);
  const letters = await eventually(async () => {
    const mine = dead.filter((m) => m.headers['x-consumer'] === name);
    return mine.length > 0 ? mine : undefined;
  });
  expect(letters.map((m) => JSON.parse(m.value!.toString()).id)).toEqual([events[2]!.id]);
  // redelivered (without the poison): all duplicates, nothing applied again
  const duplicates = consumer.health().duplicates;
  await send(events.filter((e) => e.data.name !== 'poison'));
  await eventually(async () => consumer.health().duplicates >= duplicates + 4, { timeoutMs: 30_000 });
  expect((await applied()).sort()).toEqual(['a', 'b', 'c', 'd']);
});

test('events from a newer producer: unknown type ignored and counted, unknown enum value and field tolerated, newer envelope dead-lettered', async () => {
  const { name, consumer } = await probe({
    'user.created': async (ctx) => record(name, ctx.event.id, ctx.event.data.role)(ctx),
  });
  const userId = randomUUID();
  const known = buildEnvelope('auth', 'user.created', userId, { userId, email: 'e@x.test', name: 'N', role: 'SALES', active: true }, { actorId: null });
  const futureEnum = { ...known, id: randomUUID(), data: { ...known.data, role: 'AUDITOR', nickname: 'future field' } };
  const futureType = { ...known, id: randomUUID(), type: 'user.merged', data: { into: userId } };
  const futureEnvelope = { ...known, id: randomUUID(), version: 2 };
  const marker = { ...known, id: randomUUID() };
  await publish('user.events', futureType, futureEnum, futureEnvelope, marker);
  // each event has a key of its own, so each may sit in another partition: no order among them to wait on
  await eventually(async () => (await effects(name)).some((e) => e.event_id === marker.id), { timeoutMs: 30_000 });
  await eventually(async () => consumer.health().ignored >= 1, { timeoutMs: 30_000 });
  const rows = await eventually(async () => {
    const all = await effects(name);
    return all.some((e) => e.event_id === futureEnum.id) ? all : undefined;
  });
  expect(rows.find((e) => e.event_id === futureEnum.id)?.detail).toBe('AUDITOR');
  expect(rows.some((e) => e.event_id === futureEnvelope.id)).toBe(false);
  const letters = await eventually(async () => {
    const mine = dead.filter((m) => m.headers['x-consumer'] === name);
    return mine.length > 0 ? mine : undefined;
  });
  expect(letters).toHaveLength(1); // only the envelope this build cannot read
  expect(letters[0]!.headers['x-error']).toMatch(/envelope version 2 is not supported/);
});

test('the outbox refuses an oversized event at write time, parks an oversized row, and versions each aggregate', async () => {
  const runtime = stack.subgraphs.auth!;
  const em = runtime.fork();
  const userId = randomUUID();
  runtime.emit(em, 'user.login', userId, { userId, email: 'x'.repeat(5000) }, { actorId: null });
  const refused = await em.flush().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(errorCode({ errors: [refused as { extensions?: { code?: string } }] })).toBe('PAYLOAD_TOO_LARGE');
  expect(String((refused as Error).message)).toMatch(/over the 4096-byte limit \(EVENT_MAX_BYTES\)/);

  // A row over the limit that is already in the outbox (written before the limit was lowered) is parked; the rest flow on.
  const big = buildEnvelope('auth', 'user.login', userId, { userId, email: 'y'.repeat(5000) }, { actorId: null });
  await stack.sql('auth', `INSERT INTO outbox (id, topic, key, type, envelope) VALUES (?, 'user.events', ?, 'user.login', ?)`, [big.id, userId, JSON.stringify(big)]);
  const em2 = runtime.fork();
  const versions = [1, 2, 3].map(() => runtime.emit(em2, 'user.logout', userId, { userId }, { actorId: null }));
  await em2.flush();
  interface OutboxRow {
    id: string;
    sent_at: Date | null;
    failed_at: Date | null;
    last_error: string | null;
    aggregate_version: string;
    envelope: { aggregateVersion: number };
  }
  const rows = await eventually(async () => {
    const all = await stack.sql<OutboxRow>('auth', 'SELECT id, sent_at, failed_at, last_error, aggregate_version, envelope FROM outbox WHERE key = ? ORDER BY seq', [userId]);
    return all.length === 4 && all.every((r) => r.sent_at ?? r.failed_at) ? all : undefined; // the relay runs in the background
  });
  expect(rows.map((r) => [r.id, r.aggregate_version, r.envelope.aggregateVersion])).toEqual([[big.id, '1', 1], ...versions.map((v, i) => [v.id, String(i + 2), i + 2])]);
  expect(rows[0]!.failed_at).not.toBeNull();
  expect(rows[0]!.sent_at).toBeNull();
  expect(rows[0]!.last_error).toMatch(/over EVENT_MAX_BYTES 4096/);
  expect(rows.slice(1).every((r) => r.sent_at !== null && r.failed_at === null)).toBe(true);
  expect(runtime.relay!.parked()).toBe(1);
});

test('retention deletes old sent outbox rows, parked rows older than the DLQ retention, old inbox rows and idle version counters; never unsent rows, and versions never go down', async () => {
  const runtime = stack.subgraphs.auth!;
  const old = "now() - interval '400 days'";
  const mk = () => buildEnvelope('auth', 'user.logout', randomUUID(), { userId: randomUUID() }, { actorId: null });
  const [sent, unsent, parked, recentParked, recent] = [mk(), mk(), mk(), mk(), mk()];
  const insert = (e: ReturnType<typeof mk>, cols: string) =>
    stack.sql('auth', `INSERT INTO outbox (id, topic, key, type, envelope, created_at, sent_at, failed_at) VALUES (?, 'user.events', ?, 'user.logout', ?, ${old}, ${cols})`, [
      e.id,
      e.aggregateId,
      JSON.stringify(e),
    ]);
  await stack.sql('auth', 'ALTER TABLE outbox DISABLE TRIGGER outbox_stamp'); // keep these rows out of the relay's way: no seq
  try {
    await insert(sent, `${old}, NULL`);
    await insert(unsent, 'NULL, NULL');
    await insert(parked, `NULL, ${old}`);
    await insert(recentParked, 'NULL, now()');
    await insert(recent, 'now(), NULL');
  } finally {
    await stack.sql('auth', 'ALTER TABLE outbox ENABLE TRIGGER outbox_stamp');
  }
  const [oldInbox, newInbox] = [randomUUID(), randomUUID()];
  await stack.sql('auth', `INSERT INTO inbox (consumer, event_id, handled_at) VALUES ('probe-retention', ?, ${old}), ('probe-retention', ?, now())`, [oldInbox, newInbox]);
  // an aggregate idle for 400 days at version 41
  const idle = randomUUID();
  await stack.sql('auth', `INSERT INTO aggregate_versions (topic, key, version, touched_at) VALUES ('user.events', ?, 41, ${old})`, [idle]);

  const pruned = await pruneEventTables(runtime);
  expect(pruned.outbox).toBeGreaterThanOrEqual(1);
  expect(pruned.parked).toBeGreaterThanOrEqual(1);
  expect(pruned.inbox).toBeGreaterThanOrEqual(1);
  expect(pruned.versions).toBeGreaterThanOrEqual(1);
  const left = (await stack.sql<{ id: string }>('auth', 'SELECT id FROM outbox WHERE id IN (?, ?, ?, ?, ?)', [sent.id, unsent.id, parked.id, recentParked.id, recent.id]))
    .map((r) => r.id)
    .sort();
  expect(left).toEqual([unsent.id, recentParked.id, recent.id].sort());
  const inbox = (await stack.sql<{ event_id: string }>('auth', `SELECT event_id FROM inbox WHERE consumer = 'probe-retention'`)).map((r) => r.event_id);
  expect(inbox).toEqual([newInbox]);
  expect(await stack.sql('auth', 'SELECT 1 FROM aggregate_versions WHERE key = ?', [idle])).toHaveLength(0);
  // the aggregate's next event starts above every version pruned: a copy holding version 41 applies it
  const em = runtime.fork();
  runtime.emit(em, 'user.logout', idle, { userId: idle }, { actorId: null });
  await em.flush();
  const [row] = await stack.sql<{ aggregate_version: string }>('auth', 'SELECT aggregate_version FROM outbox WHERE key = ? AND failed_at IS NULL', [idle]);
  expect(Number(row!.aggregate_version)).toBeGreaterThan(41);
  await stack.sql('auth', 'DELETE FROM outbox WHERE id IN (?, ?, ?)', [unsent.id, recentParked.id, recent.id]); // no seq: not the relay's
});
