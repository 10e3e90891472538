/**
 * Configuration per service (packages/config/src/variables.ts), through the services' own entries
 * as their containers run them: in production each starts with its own keys only — a subgraph without
 * AUTH_SIGNING_KEY, GATEWAY_SIGNING_KEY or REDIS_URL, auth without REDIS_URL or the gateway's key —
 * and another service's variables, even malformed, are not read.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfig } from '@crm/config';
import { generateKeySet, keyEnvFor } from '@crm/runtime';
import { dropTestDatabases, testOverrides } from '@crm/platform';
import { startService, waitFor, type ServiceProcess } from './support/replicas';

const KEYS = generateKeySet(['auth', 'customer']);
const base = testOverrides(randomBytes(4).toString('hex'), { LOG_LEVEL: 'info', ADMIN_EMAIL: '', ADMIN_PASSWORD: '' });
/** Nothing any subgraph reads: other services' keys unset, their variables malformed. */
const othersOnly = {
  AUTH_SIGNING_KEY: '',
  AUTH_PUBLIC_KEYS: '',
  GATEWAY_SIGNING_KEY: '',
  REDIS_URL: '',
  MAX_COST: 'lots',
  RATE_LIMIT_POINTS: 'many',
  SUPERGRAPH_PATH: '/nowhere',
  SAGA_TIMEOUT_MS: 'soon',
  DUE_SOON_INTERVAL_MS: '-1',
};
const services: ServiceProcess[] = [];

afterAll(async () => {
  for (const s of services) s.kill('SIGKILL');
  await dropTestDatabases(readConfig(process.env, base));
});

test.each([
  ['customer', { MAIL_URL: 'not-a-url', ADMIN_PASSWORD: 'password' }],
  ['auth', {}],
])('%s starts in production with its own keys only', async (name, extra) => {
  // its own keys last: auth's AUTH_SIGNING_KEY is its own
  const env = { ...base, NODE_ENV: 'production', ...othersOnly, ...extra, ...keyEnvFor(name, KEYS) };
  const service = await startService(name, `config-${name}`, env, join(tmpdir(), 'crm-service-config'));
  services.push(service);
  await waitFor(service, '/ready');
  expect(service.alive()).toBe(true);
  service.kill('SIGKILL');
  await service.exited;
});
