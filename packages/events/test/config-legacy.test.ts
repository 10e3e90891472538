/** The predecessor's variable names (../shared/seeds) mean what they meant there, or stop the start naming the variable to use. */
import { ConfigError, readConfig } from '@crm/config';
import { busKind } from '../src/buses';

const read = (env: Record<string, string>) => readConfig({}, env);

test('KAFKA_ENABLED=false means no broker, as in the seeds: the embedded log, whatever KAFKA_BROKERS says', () => {
  const config = read({ KAFKA_ENABLED: 'false', KAFKA_BROKERS: '127.0.0.1:9092' });
  expect(config.KAFKA_BROKERS).toEqual([]);
  expect(busKind(config)).not.toBe('kafka');
});

test('KAFKA_ENABLED=true without brokers stops the start naming KAFKA_BROKERS', () => {
  expect(() => read({ KAFKA_ENABLED: 'true' })).toThrow(ConfigError);
  expect(() => read({ KAFKA_ENABLED: 'true' })).toThrow(/KAFKA_BROKERS/);
  expect(busKind(read({ KAFKA_ENABLED: 'true', KAFKA_BROKERS: 'b:9092' }))).toBe('kafka');
  expect(() => read({ KAFKA_ENABLED: 'maybe' })).toThrow(/KAFKA_ENABLED/);
});

test("the seeds' aliases: KAFKA_BROKER, KAFKA_MECHANISM (any case), KAFKA_SASL_USERNAME/PASSWORD, KAFKA_SECURITY_PROTOCOL", () => {
  const config = read({
    KAFKA_BROKER: 'cloud:9093',
    KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
    KAFKA_MECHANISM: 'PLAIN',
    KAFKA_SASL_USERNAME: 'svc',
    KAFKA_SASL_PASSWORD: 's3cret',
  });
  expect(config).toMatchObject({ KAFKA_BROKERS: ['cloud:9093'], KAFKA_SSL: true, KAFKA_SASL_MECHANISM: 'plain', KAFKA_USERNAME: 'svc', KAFKA_PASSWORD: 's3cret' });
  expect(read({ KAFKA_BROKERS: 'b:1', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_USERNAME: 'u', KAFKA_PASSWORD: 'p' }).KAFKA_SASL_MECHANISM).toBe('scram-sha-256');
  expect(read({ KAFKA_BROKERS: 'b:1', KAFKA_SECURITY_PROTOCOL: 'SSL' }).KAFKA_SSL).toBe(true);
});

test.each([
  [{ KAFKA_BROKERS: 'b:1', KAFKA_USERNAME: 'svc', KAFKA_PASSWORD: 'p' }, /KAFKA_SASL_MECHANISM/],
  [{ KAFKA_BROKERS: 'b:1', KAFKA_SASL_USERNAME: 'svc', KAFKA_SASL_PASSWORD: 'p' }, /KAFKA_SASL_MECHANISM/],
  [{ KAFKA_BROKERS: 'b:1', KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' }, /KAFKA_SASL_MECHANISM/],
  [{ KAFKA_BROKERS: 'b:1', KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SSL: 'false' }, /KAFKA_SSL/],
  [{ KAFKA_BROKERS: 'b:1', KAFKA_SECURITY_PROTOCOL: 'TLS' }, /KAFKA_SECURITY_PROTOCOL/],
  [{ KAFKA_BROKER: 'a:1', KAFKA_BROKERS: 'b:1' }, /set only KAFKA_BROKERS/],
  [{ UPSTASH_KAFKA_BROKER_URL: 'x.upstash.io:9092' }, /UPSTASH_KAFKA_BROKER_URL.*KAFKA_BROKERS/],
  [{ UPSTASH_KAFKA_REST_URL: 'https://x.upstash.io' }, /REST/],
] as [Record<string, string>, RegExp][])('%j stops the start with an error naming the variable', (env, message) => {
  expect(() => read(env)).toThrow(ConfigError);
  expect(() => read(env)).toThrow(message);
});

test('credentials without a mechanism are never used unauthenticated: the start stops', () => {
  // the process environment is read the same way (not only overrides)
  expect(() => readConfig({ KAFKA_BROKERS: 'b:1', KAFKA_PASSWORD: 'p' })).toThrow(/KAFKA_USERNAME\/KAFKA_PASSWORD are set but KAFKA_SASL_MECHANISM is not/);
});
