/**
 * Nothing committed is lost while Kafka is down: a second, real broker (scripts/kafka.sh on other
 * ports) is stopped under a running stack, users register meanwhile (their events wait in the
 * outbox), the broker comes back, and the relay publishes every event exactly once.
 * Needs Java and the cached Kafka jars: runs where KAFKA_BROKERS is set (CI), skipped otherwise.
 */
import { randomUUID } from 'node:crypto';
import { eventually } from '@crm/testing';
import { KafkaBus } from '@crm/events';
import { readConfig } from '@crm/config';
import { startTestStack, testBroker, type TestStack } from '@crm/platform';

const enabled = Boolean(process.env.KAFKA_BROKERS);
const describeWithKafka = enabled ? describe : describe.skip;

const broker = testBroker('outage');

describeWithKafka('outbox relay across a broker outage', () => {
  let stack: TestStack;
  jest.setTimeout(300_000);

  beforeAll(async () => {
    broker.start();
    stack = await startTestStack({ only: ['auth'], env: { KAFKA_BROKERS: broker.brokers } });
  });
  afterAll(async () => {
    await stack?.stop().catch(() => undefined);
    broker.remove();
  });

  const unsent = async () => {
    const [row] = await stack.subgraphs.auth!.db.orm.em.fork().getConnection().execute<{ n: string }[]>('SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL');
    return Number(row?.n ?? 0);
  };

  test('events written while the broker is down are published once it is back', async () => {
    await eventually(async () => (await unsent()) === 0); // the admin's own user.created went out
    broker.stop();

    const emails = [1, 2, 3].map((i) => `outage-${i}-${randomUUID()}@test.local`);
    for (const email of emails) {
      const r = await stack.gql(`mutation($e: String!) { register(input: { email: $e, password: "0123456789", name: "Outage" }) { user { id } } }`, { e: email });
      expect(r.errors).toBeUndefined(); // the API keeps working; only publishing waits
    }
    expect(await unsent()).toBeGreaterThanOrEqual(3);

    broker.start();
    await eventually(async () => (await unsent()) === 0, { timeoutMs: 90_000, intervalMs: 500 });

    // Read the topic back from the beginning with a fresh group: each event is there exactly once.
    const reader = new KafkaBus(readConfig(process.env, { KAFKA_BROKERS: broker.brokers, KAFKA_NAMESPACE: stack.config.KAFKA_NAMESPACE }), 'outage-reader');
    const seen: string[] = [];
    const sub = await reader.subscribe({
      groupId: `reader-${randomUUID()}`,
      topics: ['user.events'],
      handle: async (m) => {
        seen.push(m.value?.toString() ?? '');
      },
    });
    try {
      await eventually(async () => emails.every((e) => seen.some((v) => v.includes(e))), { timeoutMs: 60_000 });
      for (const email of emails) {
        expect(seen.filter((v) => v.includes(email) && v.includes('"type":"user.created"'))).toHaveLength(1);
      }
    } finally {
      await sub.stop();
      await reader.close();
    }
  });
});
