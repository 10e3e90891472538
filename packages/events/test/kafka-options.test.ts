/** TLS and SASL from the config reach the Kafka client in the form it accepts (its own option validation runs in the constructors). */
import { Admin, Consumer, Producer } from '@platformatic/kafka';
import { readConfig } from '@crm/config';
import { kafkaOptionsFrom } from '../src/kafka-bus';

const config = (env: Record<string, string>) => readConfig({}, { KAFKA_BROKERS: 'broker-1:9093,broker-2:9093', ...env });

test.each([
  ['plain', 'PLAIN'],
  ['scram-sha-256', 'SCRAM-SHA-256'],
  ['scram-sha-512', 'SCRAM-SHA-512'],
] as const)('SASL %s over TLS', async (mechanism, expected) => {
  const options = kafkaOptionsFrom(config({ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: mechanism, KAFKA_USERNAME: 'svc', KAFKA_PASSWORD: 's3cret' }), 'crm-test');
  expect(options).toMatchObject({
    clientId: 'crm-test',
    bootstrapBrokers: ['broker-1:9093', 'broker-2:9093'],
    tls: {},
    sasl: { mechanism: expected, username: 'svc', password: 's3cret' },
  });
  const clients = [new Producer(options), new Consumer({ ...options, groupId: 'g' }), new Admin(options)];
  await Promise.all(clients.map((c) => c.close()));
});

test('plain TCP without SASL unless configured; a mechanism without credentials is refused', () => {
  const options = kafkaOptionsFrom(config({}), 'crm-test');
  expect(options).not.toHaveProperty('tls');
  expect(options).not.toHaveProperty('sasl');
  expect(() => kafkaOptionsFrom(config({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_USERNAME: 'svc' }), 'x')).toThrow(/KAFKA_PASSWORD/);
});
