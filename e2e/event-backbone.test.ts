/**
 * The event backbone, on whichever bus the environment gives (real Kafka in CI): redelivery has
 * one effect, poison messages go to the DLQ while the next message is processed, and a rolled
 * back change publishes nothing. Driven through the auth subgraph's audit consumer.
 */
import { randomUUID } from 'node:crypto';
import { buildEnvelope, type DeliveredMessage } from '@crm/events';
import { eventually } from '@crm/testing';
import { startTestStack, type TestStack } from '@crm/platform';

let stack: TestStack;
const seen: DeliveredMessage[] = [];
beforeAll(async () => {
  stack = await startTestStack({ only: ['auth'] });
  await stack.bus.subscribe({
    groupId: `observer-${randomUUID()}`,
    topics: ['customer.events.dlq', 'user.events'],
    handle: async (m) => {
      seen.push(m);
    },
  });
});
afterAll(async () => {
  await stack?.stop();
});

const customerCreated = (customerId: string, actorId: string) =>
  buildEnvelope('customer', 'customer.created', customerId, { customerId, name: 'Acme', assignedRepId: null, size: null, investmentProfile: null }, { actorId });

async function auditCount(entityId: string): Promise<number> {
  const admin = await stack.admin();
  const r = await admin.gql(`{ auditLog(entityType: "Customer", first: 100) { edges { node { entityId action } } } }`);
  return r.data.auditLog.edges.filter((e: { node: { entityId: string } }) => e.node.entityId === entityId).length;
}

test('the same event delivered twice has one effect', async () => {
  const admin = await stack.admin();
  const id = randomUUID();
  const envelope = customerCreated(id, admin.id);
  const message = { topic: 'customer.events', key: id, value: JSON.stringify(envelope) };
  await stack.bus.publish([message]);
  await stack.bus.publish([message]);
  await eventually(async () => (await auditCount(id)) >= 1);
  // a later event proves the duplicate was consumed (same partition, in order) before we count
  const marker = randomUUID();
  await stack.bus.publish([{ topic: 'customer.events', key: id, value: JSON.stringify(customerCreated(marker, admin.id)) }]);
  await stack.bus.publish([{ topic: 'customer.events', key: id, value: JSON.stringify(customerCreated(marker, admin.id)).replace(/"id":"[^"]+"/, `"id":"${randomUUID()}"`) }]);
  await eventually(async () => (await auditCount(marker)) === 2);
  expect(await auditCount(id)).toBe(1);
});

test('a poison message lands in the DLQ with its origin, and the next message is processed', async () => {
  const admin = await stack.admin();
  const key = randomUUID();
  const after = randomUUID();
  const badPayload = { ...customerCreated(key, admin.id), data: { customerId: key } }; // misses required fields
  await stack.bus.publish([
    { topic: 'customer.events', key, value: 'this is not json' },
    { topic: 'customer.events', key, value: JSON.stringify(badPayload) },
    { topic: 'customer.events', key, value: JSON.stringify(customerCreated(after, admin.id)) },
  ]);
  await eventually(async () => (await auditCount(after)) === 1);
  const dead = await eventually(async () => {
    const mine = seen.filter((m) => m.topic === 'customer.events.dlq' && m.key === key);
    return mine.length >= 2 ? mine : undefined;
  });
  expect(dead.map((m) => m.value?.toString())).toEqual(['this is not json', JSON.stringify(badPayload)]);
  expect(dead[0]!.headers['x-error']).toMatch(/not JSON/);
  expect(dead[1]!.headers['x-error']).toMatch(/bad customer.created payload/);
  expect(dead[0]!.headers['x-origin-topic']).toBe('customer.events');
  expect(dead[0]!.headers['x-origin-offset']).toMatch(/^\d+$/);
  expect(dead[0]!.headers['x-consumer']).toBe('auth');
  expect(await auditCount(key)).toBe(0);
});

test('a rolled-back mutation publishes nothing; a committed one is published once', async () => {
  const email = `rollback-${randomUUID()}@test.local`;
  const first = await stack.gql(`mutation($e: String!) { register(input: { email: $e, password: "0123456789", name: "One" }) { user { id } } }`, { e: email });
  expect(first.errors).toBeUndefined();
  // The duplicate stages a user.created in its unit of work, then the unique index rolls it back.
  const dup = await stack.gql(`mutation($e: String!) { register(input: { email: $e, password: "0123456789", name: "Two" }) { user { id } } }`, { e: email.toUpperCase() });
  expect(dup.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  const marker = await stack.user();
  const markerCreated = (m: DeliveredMessage) => m.topic === 'user.events' && m.value?.toString().includes(marker.email);
  await eventually(async () => seen.some(markerCreated));
  const created = seen.filter((m) => m.topic === 'user.events' && m.value?.toString().includes(`"type":"user.created"`) && m.value.toString().toLowerCase().includes(email));
  expect(created).toHaveLength(1);
  // and the outbox holds exactly the committed row for that email: the rolled-back one left nothing
  const [rows] = await stack.subgraphs
    .auth!.db.orm.em.fork()
    .getConnection()
    .execute<{ n: string }[]>(`SELECT count(*) AS n FROM outbox WHERE type = 'user.created' AND lower(envelope::text) LIKE ?`, [`%${email}%`]);
  expect(Number(rows?.n ?? 0)).toBe(1);
});
