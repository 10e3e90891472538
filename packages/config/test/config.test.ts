/** Booleans from the environment are read one way (zod's stringbool); anything else is a clear error. */
import { ConfigError, readConfig } from '@crm/config';

test('every boolean variable accepts the same spellings, any case; unset or empty is its default', () => {
  for (const yes of ['true', '1', 'yes', 'on', 'TRUE', 'Yes']) {
    const c = readConfig({}, { KAFKA_SSL: yes, OTEL_SDK_DISABLED: yes, SUBGRAPH_DEDUPE: yes, INBOUND_DEDUPE: yes, RATE_LIMIT_ENABLED: yes, INTROSPECTION: yes, SANDBOX: yes });
    expect([c.KAFKA_SSL, c.OTEL_SDK_DISABLED, c.SUBGRAPH_DEDUPE, c.INBOUND_DEDUPE, c.RATE_LIMIT_ENABLED, c.introspection, c.sandbox]).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
  }
  for (const no of ['false', '0', 'no', 'off', 'FALSE']) {
    const c = readConfig({}, { KAFKA_SSL: no, OTEL_SDK_DISABLED: no, SUBGRAPH_DEDUPE: no, INBOUND_DEDUPE: no, RATE_LIMIT_ENABLED: no, INTROSPECTION: no, SANDBOX: no });
    expect([c.KAFKA_SSL, c.OTEL_SDK_DISABLED, c.SUBGRAPH_DEDUPE, c.INBOUND_DEDUPE, c.RATE_LIMIT_ENABLED, c.introspection, c.sandbox]).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  }
  const defaults = readConfig({}, { KAFKA_SSL: '', SUBGRAPH_DEDUPE: '' });
  expect([defaults.KAFKA_SSL, defaults.SUBGRAPH_DEDUPE, defaults.INBOUND_DEDUPE, defaults.RATE_LIMIT_ENABLED, defaults.introspection]).toEqual([
    false,
    true,
    false,
    undefined,
    true,
  ]);
});

test('an invalid boolean is a configuration error naming the variable', () => {
  expect(() => readConfig({}, { SUBGRAPH_DEDUPE: 'maybe' })).toThrow(ConfigError);
  expect(() => readConfig({}, { SANDBOX: 'ture' })).toThrow(/SANDBOX: Invalid option/);
  expect(() => readConfig({}, { RATE_LIMIT_ENABLED: 'enabled please' })).toThrow(/RATE_LIMIT_ENABLED/);
});
