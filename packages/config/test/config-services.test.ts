/**
 * Configuration per service (config/variables.ts): each service validates only the variables it
 * declares, ignores the rest of the environment, and in production requires only its own secrets.
 */
import { ConfigError, readConfig, readServiceConfig, requireServiceSecrets, serviceVariables, serviceView, SERVICE_PIECES, type ServiceName } from '../src';
import { generateKeySet, keyEnvFor } from '@crm/runtime';

const KEYS = generateKeySet(['auth', 'customer', 'sales-activity', 'opportunity', 'analytics']);
const SUBGRAPHS = ['auth', 'customer', 'sales-activity', 'opportunity', 'analytics'] as const;
const production = (service: string, extra: Record<string, string> = {}) => ({ NODE_ENV: 'production', ...keyEnvFor(service, KEYS), ...extra });

test('each service declares a shared piece and its own variables; the launcher declares all of them', () => {
  const all = Object.keys(readConfig({}))
    .filter((k) => k === k.toUpperCase())
    .sort();
  expect(serviceVariables('platform').sort()).toEqual(all);
  const union = new Set<string>((Object.keys(SERVICE_PIECES) as ServiceName[]).filter((s) => s !== 'platform').flatMap((s) => serviceVariables(s)));
  // every variable but the launcher's own is read by some service
  expect(all.filter((k) => !union.has(k))).toEqual(['STACK_PROCESSES']);
  for (const s of Object.keys(SERVICE_PIECES) as ServiceName[]) {
    for (const shared of ['NODE_ENV', 'LOG_LEVEL', 'POSTGRES_URL', 'DATABASE_PREFIX', 'KAFKA_BROKERS', 'KAFKA_NAMESPACE', 'OTEL_EXPORTER_OTLP_ENDPOINT'])
      expect(serviceVariables(s) as string[]).toContain(shared);
  }
  const holders = (v: string) => (Object.keys(SERVICE_PIECES) as ServiceName[]).filter((s) => s !== 'platform' && serviceVariables(s).includes(v as never)).sort();
  expect(holders('AUTH_SIGNING_KEY')).toEqual(['auth']);
  expect(holders('GATEWAY_SIGNING_KEY')).toEqual(['gateway']);
  expect(holders('MAIL_URL')).toEqual(['auth']);
  expect(holders('REDIS_URL')).toEqual(['analytics', 'gateway']);
  expect(holders('SERVICE_SIGNING_KEY')).toEqual([...SUBGRAPHS].sort());
  expect(holders('GATEWAY_PUBLIC_KEYS')).toEqual([...SUBGRAPHS].sort());
  expect(holders('SAGA_TIMEOUT_MS')).toEqual(['analytics']);
  expect(holders('DUE_SOON_INTERVAL_MS')).toEqual(['sales-activity']);
  expect(holders('MAX_COST')).toEqual(['gateway']);
});

test("a service ignores another service's variables, even malformed, and rejects its own malformed ones", () => {
  const env = { MAX_COST: 'lots', MAIL_URL: 'not-a-url', SAGA_TIMEOUT_MS: 'soon', DATABASE_POOL_MAX: '0' };
  const customer = readServiceConfig('customer', {}, { MAX_COST: 'lots', MAIL_URL: 'not-a-url', SAGA_TIMEOUT_MS: 'soon' });
  expect(customer.DATABASE_POOL_MAX).toBe(10);
  expect(() => readServiceConfig('customer', env)).toThrow(/DATABASE_POOL_MAX/);
  expect(() => readServiceConfig('gateway', env)).toThrow(/Invalid configuration for gateway:\n {2}MAX_COST/);
  expect(() => readServiceConfig('auth', { MAIL_URL: 'not-a-url' })).toThrow(/MAIL_URL: must be an smtp/);
  expect(() => readServiceConfig('analytics', { SAGA_TIMEOUT_MS: 'soon' })).toThrow(/SAGA_TIMEOUT_MS/);
  expect(() => readConfig(env)).toThrow(ConfigError);
});

test('a service configuration holds only what it declares: reading anything else is an error, not undefined', () => {
  const customer = readServiceConfig('customer', { AUTH_SIGNING_KEY: 'x', MAX_COST: '7' });
  expect(
    Object.keys(customer)
      .filter((k) => k === k.toUpperCase())
      .sort(),
  ).toEqual(serviceVariables('customer').sort());
  expect(() => customer.AUTH_SIGNING_KEY).toThrow(/customer reads AUTH_SIGNING_KEY, which its configuration does not declare/);
  expect(() => customer.MAX_COST).toThrow(ConfigError);
  expect(() => customer.registrationPolicy).toThrow(ConfigError);
  expect(customer.production).toBe(false);
  const auth = readServiceConfig('auth', {});
  expect(auth.registrationPolicy).toBe('open');
  expect(() => auth.REDIS_URL).toThrow(/auth reads REDIS_URL/);
  const gateway = readServiceConfig('gateway', { NODE_ENV: 'test' });
  expect([gateway.introspection, gateway.sandbox]).toEqual([true, true]);
  expect(() => gateway.SERVICE_SIGNING_KEY).toThrow(ConfigError);
  // the launcher's one-process mode hands each service the same view of its own configuration
  const all = readConfig({}, { MAX_COST: '7', SAGA_TIMEOUT_MS: '5000' });
  expect(serviceView('gateway', all).MAX_COST).toBe(7);
  expect(serviceView('analytics', all).SAGA_TIMEOUT_MS).toBe(5000);
  expect(() => serviceView('customer', all).MAX_COST).toThrow(ConfigError);
  expect(serviceView('platform', all)).toBe(all);
});

test("in production each service requires its own secrets and no other service's", () => {
  for (const s of ['customer', 'sales-activity', 'opportunity', 'analytics'] as const) {
    // no AUTH_SIGNING_KEY, GATEWAY_SIGNING_KEY, AUTH_PUBLIC_KEYS, REDIS_URL, MAIL_URL; another service's placeholder secret is not its business
    const c = readServiceConfig(s, production(s, { ADMIN_PASSWORD: 'password', REDIS_URL: '' }));
    expect(c.production).toBe(true);
    expect(() => requireServiceSecrets(c, s)).not.toThrow();
    expect(() => requireServiceSecrets(readServiceConfig(s, { NODE_ENV: 'production' }), s)).toThrow(/GATEWAY_PUBLIC_KEYS must be set in production/);
  }
  const auth = readServiceConfig('auth', production('auth', { REDIS_URL: '' }));
  expect(() => requireServiceSecrets(auth, 'auth')).not.toThrow();
  expect(() => readServiceConfig('auth', production('auth', { ADMIN_PASSWORD: 'password' }))).toThrow(/ADMIN_PASSWORD looks like a placeholder/);
  const gateway = readServiceConfig('gateway', production('gateway', { ADMIN_PASSWORD: 'password', MAIL_URL: 'nope' }));
  expect(() => requireServiceSecrets(gateway, 'gateway')).not.toThrow();
  expect(() => requireServiceSecrets(readServiceConfig('gateway', { NODE_ENV: 'production' }), 'gateway')).toThrow(
    /GATEWAY_SIGNING_KEY must be set[\s\S]*AUTH_PUBLIC_KEYS must be set/,
  );
  // a secret the service does hold is still checked
  expect(() => readServiceConfig('customer', production('customer', { METRICS_TOKEN: 'change-me' }))).toThrow(/METRICS_TOKEN/);
});

test("the predecessor's variable names work for every service", () => {
  for (const s of Object.keys(SERVICE_PIECES) as ServiceName[]) {
    const c = readServiceConfig(s, { KAFKA_BROKER: 'old-broker:9092', KAFKA_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' });
    expect([c.KAFKA_BROKERS, c.KAFKA_SASL_MECHANISM, c.KAFKA_USERNAME, c.KAFKA_PASSWORD]).toEqual([['old-broker:9092'], 'plain', 'u', 'p']);
    expect(() => readServiceConfig(s, { UPSTASH_KAFKA_BROKER_URL: 'x' })).toThrow(/UPSTASH_KAFKA_BROKER_URL/);
  }
});
