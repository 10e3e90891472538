/**
 * `npm run kafka:dlq -- list|replay|purge` on a real broker (runs where KAFKA_BROKERS is set; else on
 * the event log in Postgres where POSTGRES_URL is):
 * a dead letter is listed with its origin and error, replayed through the normal consumer (one
 * effect, even when replayed twice), and purged up to what was read.
 *
 * Fault-suite story (point 4 of issue 26): a replay of an old user.updated after the copy moved on
 * changes nothing — the user, a MANAGER now, stays out of customer's rep directory and
 * `assignCustomer` to them stays refused — and it reaches only the group that failed it.
 */
import { randomUUID } from 'node:crypto';
import { buildEnvelope } from '@crm/events';
import { eventually } from '@crm/testing';
import { parkedRows, purgeDeadLetters, readDeadLetters, replayDeadLetters, startTestStack, unparkRows, type LogBus, type TestStack } from '@crm/platform';

const describeWithKafka = process.env.KAFKA_BROKERS || process.env.POSTGRES_URL ? describe : describe.skip;

describeWithKafka('dead letters', () => {
  let stack: TestStack;
  jest.setTimeout(180_000);
  beforeAll(async () => {
    stack = await startTestStack({ only: ['auth'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('listed with origin and error, replayed through the consumer once, purged', async () => {
    const bus = stack.bus as LogBus;
    const ns = stack.config.KAFKA_NAMESPACE;
    const admin = await stack.admin();
    const customerId = randomUUID();
    const event = buildEnvelope(
      'customer',
      'customer.created',
      customerId,
      { customerId, name: 'Replayed Inc', assignedRepId: null, size: null, investmentProfile: null },
      { actorId: admin.id },
    );
    await bus.publish([
      {
        topic: 'customer.events.dlq',
        key: customerId,
        value: JSON.stringify(event),
        headers: {
          'x-error': 'customer.created failed after 5 attempts: database away',
          'x-origin-topic': 'customer.events',
          'x-origin-partition': '0',
          'x-origin-offset': '7',
          'x-consumer': 'auth',
          'x-dead-lettered-at': new Date().toISOString(),
        },
      },
    ]);

    const letters = await readDeadLetters(bus, ns, 'customer.events');
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ originTopic: 'customer.events', consumer: 'auth', eventType: 'customer.created', eventId: event.id, key: customerId });
    expect(letters[0]!.error).toMatch(/database away/);

    const audits = async () => {
      const r = await admin.gql(`{ auditLog(entityType: "Customer", first: 100) { edges { node { entityId action } } } }`);
      return r.data.auditLog.edges.filter((e: { node: { entityId: string; action: string } }) => e.node.entityId === customerId && /created/i.test(e.node.action)).length;
    };
    expect(await audits()).toBe(0);
    expect(await replayDeadLetters(bus, letters)).toBe(1);
    expect(await replayDeadLetters(bus, letters)).toBe(1); // twice: the inbox keeps it to one effect
    await eventually(async () => (await audits()) === 1);
    // a later event on the same key proves both replays were consumed before we count again
    const marker = buildEnvelope(
      'customer',
      'customer.updated',
      customerId,
      { customerId, name: 'Replayed Inc', assignedRepId: null, size: null, investmentProfile: null, changes: ['name'] },
      { actorId: admin.id },
    );
    await bus.publish([{ topic: 'customer.events', key: customerId, value: JSON.stringify(marker) }]);
    await eventually(async () => (await stack.sql('auth', 'SELECT 1 FROM inbox WHERE event_id = ?', [marker.id])).length === 1);
    expect(await audits()).toBe(1);

    // purge removes what was read, not a letter that arrived after the read
    const read = await readDeadLetters(bus, ns, 'customer.events');
    const late = buildEnvelope(
      'customer',
      'customer.created',
      customerId,
      { customerId, name: 'Late Inc', assignedRepId: null, size: null, investmentProfile: null },
      { actorId: admin.id },
    );
    await bus.publish([
      { topic: 'customer.events.dlq', key: customerId, value: JSON.stringify(late), headers: { 'x-error': 'late', 'x-origin-topic': 'customer.events', 'x-consumer': 'auth' } },
    ]);
    expect(await purgeDeadLetters(bus, ns, read)).toBe(1);
    const left = await readDeadLetters(bus, ns, 'customer.events');
    expect(left.map((l) => l.eventId)).toEqual([late.id]);
    expect(await purgeDeadLetters(bus, ns, left)).toBe(1);
    expect(await readDeadLetters(bus, ns, 'customer.events')).toHaveLength(0);
  });

  test('kafka:dlq parked|unpark: a parked outbox row is listed, un-parked, and then sent by the relay', async () => {
    const userId = randomUUID();
    const event = buildEnvelope('auth', 'user.logout', userId, { userId }, { actorId: null });
    // parked as the relay parks a row the broker refused for good
    await stack.sql(
      'auth',
      `INSERT INTO outbox (id, topic, key, type, envelope, failed_at, attempts, last_error) VALUES (?, 'user.events', ?, 'user.logout', ?, now(), 1, 'CORRUPT_MESSAGE (test)')`,
      [event.id, userId, JSON.stringify(event)],
    );
    const parked = await parkedRows('auth', stack.config);
    expect(parked.filter((r) => r.id === event.id)).toEqual([expect.objectContaining({ id: event.id, type: 'user.logout', last_error: 'CORRUPT_MESSAGE (test)' })]);
    expect(await unparkRows('auth', event.id, stack.config)).toBe(1);
    await eventually(async () => (await stack.sql<{ sent_at: Date | null }>('auth', 'SELECT sent_at FROM outbox WHERE id = ?', [event.id]))[0]?.sent_at != null, {
      timeoutMs: 60_000,
    });
    expect((await parkedRows('auth', stack.config)).some((r) => r.id === event.id)).toBe(false);
  });
});

describeWithKafka('a replayed dead letter after the copy moved on', () => {
  let stack: TestStack;
  jest.setTimeout(240_000);
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('an old user.updated replayed to customer: the MANAGER stays not-a-rep, assignCustomer stays refused, no other group sees it', async () => {
    const started = Date.now();
    const bus = stack.bus as LogBus;
    const ns = stack.config.KAFKA_NAMESPACE;
    const admin = await stack.admin();
    const manager = await stack.user('MANAGER');
    const user = await stack.user('SALES');
    const customer = await manager.gql(`mutation { createCustomer(input: { name: "Replay Target" }) { id } }`);
    const customerId = customer.data.createCustomer.id as string;
    // user.updated while still SALES (the letter we will replay), then promoted to MANAGER
    expect((await admin.gql(`mutation($id: ID!) { updateUser(id: $id, input: { name: "Still Sales" }) { id } }`, { id: user.id })).errors).toBeUndefined();
    expect((await admin.gql(`mutation($id: ID!) { updateUser(id: $id, input: { role: MANAGER }) { id } }`, { id: user.id })).errors).toBeUndefined();
    interface Out {
      id: string;
      envelope: { id: string; aggregateVersion: number; data: { role: string } };
    }
    const events = await stack.sql<Out>('auth', `SELECT id, envelope FROM outbox WHERE key = ? AND type = 'user.updated' ORDER BY seq`, [user.id]);
    expect(events.map((e) => e.envelope.data.role)).toEqual(['SALES', 'MANAGER']);
    const [old, newest] = [events[0]!.envelope, events[1]!.envelope];
    interface RepRow {
      active: boolean;
      version: string | null;
    }
    const rep = async () => (await stack.sql<RepRow>('customer', 'SELECT active, version FROM reps WHERE id = ?', [user.id]))[0];
    await eventually(async () => Number((await rep())?.version) === newest.aggregateVersion, { timeoutMs: 60_000 });
    expect((await rep())!.active).toBe(false);
    const assign = () => manager.gql(`mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }`, { id: customerId, rep: user.id });
    expect((await assign()).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    // The customer consumer failed the old event (it never handled it: no inbox row), analytics
    // handled it; neither remembers it any more (as after inbox retention).
    await eventually(async () => (await stack.sql('analytics', 'SELECT 1 FROM inbox WHERE event_id = ?', [newest.id])).length === 1, { timeoutMs: 60_000 });
    await stack.sql('customer', 'DELETE FROM inbox WHERE event_id = ?', [old.id]);
    await stack.sql('analytics', 'DELETE FROM inbox WHERE event_id = ?', [old.id]);
    await bus.publish([
      {
        topic: 'user.events.dlq',
        key: user.id,
        value: JSON.stringify(old),
        headers: {
          'x-error': 'user.updated failed after 5 attempts: test',
          'x-origin-topic': 'user.events',
          'x-consumer': 'customer',
          'x-group': 'crm-customer',
          'x-replays': '0',
        },
      },
    ]);
    const letters = (await readDeadLetters(bus, ns, 'user.events')).filter((l) => l.eventId === old.id);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ consumer: 'customer', group: 'crm-customer', replays: 0 });
    expect(await replayDeadLetters(bus, letters)).toBe(1);

    // customer handled the replay (its inbox has the id again) and changed nothing
    await eventually(async () => (await stack.sql('customer', 'SELECT 1 FROM inbox WHERE event_id = ?', [old.id])).length === 1, { timeoutMs: 60_000 });
    expect(await rep()).toEqual({ active: false, version: String(newest.aggregateVersion) });
    expect((await assign()).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    // a later event on the same key, handled by analytics, proves analytics read past the replay: it dropped it
    const marker = await admin.gql(`mutation($id: ID!) { updateUser(id: $id, input: { name: "Marker" }) { id } }`, { id: user.id });
    expect(marker.errors).toBeUndefined();
    const [markerRow] = await stack.sql<Out>('auth', `SELECT id, envelope FROM outbox WHERE key = ? AND type = 'user.updated' ORDER BY seq DESC LIMIT 1`, [user.id]);
    await eventually(async () => (await stack.sql('analytics', 'SELECT 1 FROM inbox WHERE event_id = ?', [markerRow!.envelope.id])).length === 1, { timeoutMs: 60_000 });
    expect(await stack.sql('analytics', 'SELECT 1 FROM inbox WHERE event_id = ?', [old.id])).toHaveLength(0);
    expect((await stack.sql<{ role: string }>('analytics', 'SELECT role FROM user_refs WHERE id = ?', [user.id]))[0]!.role).toBe('MANAGER');

    // purge what was read
    const again = (await readDeadLetters(bus, ns, 'user.events')).filter((l) => l.eventId === old.id);
    expect(await purgeDeadLetters(bus, ns, again)).toBeGreaterThanOrEqual(1);
    console.log(
      `replay after the copy moved on: rep directory unchanged (version ${newest.aggregateVersion}), assignCustomer refused, analytics did not see it, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
