/**
 * Issue 27's confirmed holes, each an attack through the public API (HTTP or WebSocket) and what
 * must happen; every test here failed on the code before its fix (docs/revocation.md lists them).
 * Revocation lives in revocation-at-source.test.ts. One stack, real Postgres/Kafka/Redis when their
 * variables are set.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { buildEnvelope } from '@crm/events';
import { developmentKeySet, keyEnvFor } from '@crm/runtime';
import { eventually, rawGraphQL, rawRequest, type RawResult } from '@crm/testing';
import { ROOT, startTestStack, type TestStack, type TestUser } from '@crm/platform';
import { withGatewayReplica } from './support/replicas';

jest.setTimeout(300_000);

let stack: TestStack;
let admin: TestUser;

beforeAll(async () => {
  stack = await startTestStack({ env: { ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}), TRUST_PROXY_HOPS: '1' } });
  admin = await stack.admin();
});
afterAll(async () => {
  await stack?.stop();
});

const call = (
  query: string | undefined,
  options: { variables?: Record<string, unknown>; token?: string; ip?: string; url?: string; extra?: Record<string, unknown> } = {},
): Promise<RawResult> => rawGraphQL(options.url ?? stack.gatewayUrl, query, options);
const codeOf = (r: RawResult) => r.body.errors?.[0]?.extensions?.code;
const ip = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${(randomBytes(1)[0]! % 250) + 1}`;

/** A gateway replica of this stack with other settings (its own caps and budgets). */
const withReplica = (overrides: Record<string, unknown>, run: (url: string) => Promise<void>) => withGatewayReplica(stack, overrides, run);

/** The first result or error of one subscription over graphql-ws. */
function firstOverWs(
  url: string,
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): { result: Promise<{ data?: unknown; errors?: unknown }>; dispose(): Promise<void> } {
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` } });
  const result = new Promise<{ data?: unknown; errors?: unknown }>((resolve) => {
    client.subscribe(
      { query, ...(variables ? { variables } : {}) },
      {
        next: (r) => resolve(r as { data?: unknown; errors?: unknown }),
        error: (e) => resolve({ errors: e }),
        complete: () => undefined,
      },
    );
  });
  return { result, dispose: () => client.dispose() as Promise<void> };
}

describe('cost is estimated on the coerced variables (defaults included)', () => {
  const HTTP_PROBE = `query($n: Int = 100) { customers(first: $n) { edges { node { id
    meetings(first: $n) { edges { node { id } } }
    tasks(first: $n) { edges { node { id } } } } } } }`;

  test('HTTP: a variable default of 100 is priced as 100 (refused like first: 100 inline)', async () => {
    const rep = await stack.user('SALES');
    const inline = await call(HTTP_PROBE.replace('query($n: Int = 100)', 'query').replaceAll('$n', '100'), { token: rep.token });
    expect(codeOf(inline)).toBe('COST_LIMIT_EXCEEDED');
    const viaDefault = await call(HTTP_PROBE, { token: rep.token });
    expect([viaDefault.status, codeOf(viaDefault)]).toEqual([400, 'COST_LIMIT_EXCEEDED']);
    // The same operation with a small page sent explicitly still runs.
    const small = await call(HTTP_PROBE, { token: rep.token, variables: { n: 2 } });
    expect(small.body.errors).toBeUndefined();
  });

  test('WebSocket: a subscribe whose nested pages come from a variable default is refused', async () => {
    const rep = await stack.user('SALES');
    const probe = `subscription($n: Int = 100) { approvalStatusChanged { id customer { meetings(first: $n) { edges { node { id
      customer { tasks(first: $n) { edges { node { id } } } } } } } } } }`;
    const ws = firstOverWs(stack.gatewayUrl, rep.token, probe);
    try {
      // Refused at subscribe (an error message at once); accepted, it would wait for events: bounded.
      const first = await Promise.race([ws.result, new Promise<{ errors: string }>((r) => setTimeout(() => r({ errors: 'accepted: no refusal' }), 30_000).unref())]);
      expect(JSON.stringify(first.errors)).toMatch(/COST_LIMIT_EXCEEDED|exceeds the limit/);
    } finally {
      await ws.dispose();
    }
  });
});

test('login limits are reserved before the attempt: 30 concurrent wrong logins, then the right one, is limited', async () => {
  const victim = await stack.user('SALES', 'Burst Victim');
  const from = ip();
  const LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }';
  const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => call(LOGIN, { variables: { e: victim.email, p: `wrong-password-${i}` }, ip: from })));
  const evaluated = burst.filter((r) => codeOf(r) === 'UNAUTHENTICATED').length;
  const limited = burst.filter((r) => codeOf(r) === 'RATE_LIMITED').length;
  expect(evaluated + limited).toBe(30);
  expect(evaluated).toBeLessThanOrEqual(stack.config.LOGIN_FAILS_PER_ACCOUNT_IP);
  const right = await call(LOGIN, { variables: { e: victim.email, p: 'password-1234' }, ip: from });
  expect(right.body.data?.login ?? null).toBeNull();
  expect(codeOf(right)).toBe('RATE_LIMITED');
});

test("TRUSTED_DOCUMENTS=only: a trusted subscription delivers (the gateway's own per-event query is exempt)", async () => {
  const manifest = join(ROOT, 'clients/persisted-operations.json');
  const query = 'subscription NotificationAdded { notificationAdded { body createdAt entityId entityType id recipient { id name } title type } }';
  const rep = await stack.user('SALES', 'Trusted Subscriber');
  await withReplica({ TRUSTED_DOCUMENTS: 'only', TRUSTED_DOCUMENTS_PATH: manifest }, async (url) => {
    const stats = async () => (await (await fetch(url.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number };
    const before = (await stats()).subscriptions;
    const ws = firstOverWs(url, rep.token, query);
    try {
      await eventually(async () => (await stats()).subscriptions > before, { timeoutMs: 30_000 });
      const made = await admin.gql('mutation($r: ID!) { createCustomer(input: { name: "Trusted Delivery", assignedRepId: $r }) { id } }', { r: rep.id });
      expect(made.errors).toBeUndefined();
      const first = await ws.result;
      expect(first.errors).toBeUndefined();
      expect((first.data as { notificationAdded: { recipient: { id: string } } }).notificationAdded.recipient.id).toBe(rep.id);
    } finally {
      await ws.dispose();
    }
  });
});

test("an APQ entry planted in Redis under another query's hash is not executed", async () => {
  if (!process.env.REDIS_URL) return; // APQ is per replica in memory without Redis: nothing to plant
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL);
  try {
    const innocent = `{ me { id } } # ${randomBytes(4).toString('hex')}`;
    const hash = createHash('sha256').update(innocent).digest('hex');
    const planted = '{ users(first: 100) { edges { node { id email role } } } }';
    // Where the gateway keeps APQ entries: <RATE_LIMIT_PREFIX><KAFKA_NAMESPACE>apq: + Apollo's `apq:<hash>`.
    await redis.set(`${stack.config.RATE_LIMIT_PREFIX}${stack.config.KAFKA_NAMESPACE}apq:apq:${hash}`, planted, 'EX', 600);
    const rep = await stack.user('SALES');
    const r = await call(undefined, { token: rep.token, extra: { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } } });
    expect(codeOf(r)).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(r.body.data?.users).toBeUndefined();
  } finally {
    redis.disconnect();
  }
});

test("the gateway's live feed refuses an event from a service that does not produce its topic", async () => {
  const rep = await stack.user('SALES', 'Forged Feed Target');
  const stats = async () => (await (await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number; rejected?: number };
  const before = await stats();
  const ws = firstOverWs(stack.gatewayUrl, rep.token, 'subscription { notificationAdded { id title } }');
  try {
    await eventually(async () => (await stats()).subscriptions > before.subscriptions, { timeoutMs: 30_000 });
    const id = crypto.randomUUID();
    // notification.events is analytics' topic: a notification.created from customer is forged.
    const forged = buildEnvelope(
      'customer',
      'notification.created',
      id,
      { notificationId: id, recipientId: rep.id, type: 'SYSTEM', title: 'Forged', entityType: null, entityId: null },
      { actorId: null },
    );
    await stack.bus.publish([{ topic: 'notification.events', key: id, value: JSON.stringify(forged) }]);
    await eventually(async () => ((await stats()).rejected ?? 0) > (before.rejected ?? 0), { timeoutMs: 15_000 });
  } finally {
    await ws.dispose();
  }
});

test('a failed login is audited with no actor (not as the victim)', async () => {
  const victim = await stack.user('SALES', 'Audit Victim');
  await call('mutation($e: String!) { login(email: $e, password: "not-the-password") { accessToken } }', { variables: { e: victim.email }, ip: ip() });
  const rows = await stack.sql<{ actor_id: string | null }>('auth', "SELECT actor_id FROM audit_entries WHERE action = 'user.login_failed' AND entity_id = ?", [victim.id]);
  expect(rows.length).toBeGreaterThanOrEqual(1);
  for (const row of rows) expect(row.actor_id).toBeNull();
});

test("a reused refresh token revokes its family and the user's access tokens", async () => {
  const user = await stack.user('SALES', 'Refresh Victim');
  const REFRESH = 'mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }';
  const stolen = user.refreshToken;
  // The thief refreshes first: a new pair.
  const thief = await call(REFRESH, { variables: { t: stolen } });
  const thiefPair = thief.body.data.refreshToken as { accessToken: string; refreshToken: string };
  expect((await call('{ me { id } }', { token: thiefPair.accessToken })).status).toBe(200);
  // The owner presents the (now used) token: reuse.
  const reuse = await call(REFRESH, { variables: { t: stolen } });
  expect(codeOf(reuse)).toBe('UNAUTHENTICATED');
  // Everything of that family is dead: the thief's refresh token and its access token.
  expect(codeOf(await call(REFRESH, { variables: { t: thiefPair.refreshToken } }))).toBe('UNAUTHENTICATED');
  const after = await call('{ me { id } }', { token: thiefPair.accessToken });
  expect([after.status, codeOf(after)]).toEqual([401, 'UNAUTHENTICATED']);
});

describe('a plain GET /graphql without the CSRF header shows no stack trace or path', () => {
  const LEAKS = /stacktrace|node_modules|\.ts:\d+|\.js:\d+|\/work\/|\/app\/|at [A-Za-z]+ \(/;
  const get = (url: string) => rawRequest(url, undefined, { method: 'GET', search: '?query=%7B__typename%7D' });

  test('development mode', async () => {
    const r = await get(stack.gatewayUrl);
    expect(r.status).toBe(400);
    expect(r.text).not.toMatch(LEAKS);
  });

  test('production mode', async () => {
    await withReplica({ NODE_ENV: 'production', production: true, ...keyEnvFor('gateway', developmentKeySet(stack.config)) }, async (url) => {
      const r = await get(url);
      expect(r.status).toBe(400);
      expect(r.text).not.toMatch(LEAKS);
    });
  });

  test('DEBUG_ERRORS=true shows it (the explicit debug setting)', async () => {
    await withReplica({ DEBUG_ERRORS: true }, async (url) => {
      const r = await get(url);
      expect(r.text).toMatch(/stacktrace/);
    });
  });
});
