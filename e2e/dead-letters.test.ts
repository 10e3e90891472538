/**
 * `npm run kafka:dlq -- list|replay|purge` on a real broker (runs where KAFKA_BROKERS is set; else on
 * the event log in Postgres where POSTGRES_URL is):
 * a dead letter is listed with its origin and error, replayed through the normal consumer (one
 * effect, even when replayed twice), and purged.
 */
import { randomUUID } from 'node:crypto';
import { buildEnvelope, eventually } from '@crm/kit';
import { purgeDeadLetters, readDeadLetters, replayDeadLetters, startTestStack, type LogBus, type TestStack } from '@crm/platform';

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
    const event = buildEnvelope('customer', 'customer.created', customerId, { customerId, name: 'Replayed Inc', assignedRepId: null, size: null, investmentProfile: null }, { actorId: admin.id });
    await bus.publish([{
      topic: 'customer.events.dlq',
      key: customerId,
      value: JSON.stringify(event),
      headers: { 'x-error': 'customer.created failed after 5 attempts: database away', 'x-origin-topic': 'customer.events', 'x-origin-partition': '0', 'x-origin-offset': '7', 'x-consumer': 'auth', 'x-dead-lettered-at': new Date().toISOString() },
    }]);

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
    const marker = buildEnvelope('customer', 'customer.updated', customerId, { customerId, name: 'Replayed Inc', assignedRepId: null, size: null, investmentProfile: null, changes: ['name'] }, { actorId: admin.id });
    await bus.publish([{ topic: 'customer.events', key: customerId, value: JSON.stringify(marker) }]);
    await eventually(async () => (await stack.sql('auth', 'SELECT 1 FROM inbox WHERE event_id = ?', [marker.id])).length === 1);
    expect(await audits()).toBe(1);

    expect(await purgeDeadLetters(bus, ns, 'customer.events')).toBe(1);
    expect(await readDeadLetters(bus, ns, 'customer.events')).toHaveLength(0);
  });
});
