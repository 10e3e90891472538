/**
 * The consumer's telemetry on the dead-letter path (in-process bus): a message that does not parse
 * goes to <topic>.dlq with the producer's traceparent kept beside its origin headers, and the
 * dead-letter counter of its group moves; the group's lag is back to zero once it moved on.
 */
import { createLogger, deadLetters, consumerLag } from '@crm/telemetry';
import { MemoryBus, startConsumer, watchConsumerLag } from '@crm/events';
import { readConfig } from '@crm/config';

test('a poison message keeps its traceparent in the DLQ and is counted', async () => {
  const bus = new MemoryBus();
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const consumer = await startConsumer({
    name: 'telemetry-test',
    // the poison path never reaches the database or the runtime
    orm: undefined as never,
    runtime: undefined as never,
    bus,
    logger: createLogger('test', 'silent'),
    config: readConfig({}),
    handlers: { 'customer.created': async () => undefined },
  });
  const unwatch = watchConsumerLag(bus, 'crm-telemetry-test', ['customer.events']);
  const counted = async () => (await deadLetters.get()).values.find((v) => v.labels.group === 'crm-telemetry-test')?.value ?? 0;
  const before = await counted();
  await bus.publish([{ topic: 'customer.events', key: 'k', value: 'this is not json', headers: { traceparent } }]);
  for (let i = 0; i < 100 && bus.peek('customer.events.dlq').length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const [dead] = bus.peek('customer.events.dlq');
  expect(dead?.headers).toMatchObject({ traceparent, 'x-consumer': 'telemetry-test', 'x-origin-topic': 'customer.events' });
  expect((await counted()) - before).toBe(1);
  for (let i = 0; i < 100; i++) {
    const lag = (await consumerLag.gauge.get()).values.find((v) => v.labels.group === 'crm-telemetry-test');
    if (lag?.value === 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  expect((await consumerLag.gauge.get()).values.find((v) => v.labels.group === 'crm-telemetry-test')).toMatchObject({
    value: 0,
    labels: { topic: 'customer.events', partition: '0' },
  });
  unwatch();
  await consumer.stop();
  await bus.close();
});
