/**
 * Rate limits weighted by cost, shared by two gateway replicas over one Redis; login brute-force
 * protection; a Redis outage mid-run degrading to the in-memory insurance limiter.
 * Redis: REDIS_URL when set (CI, shared server, unique key prefix per run), otherwise a throwaway
 * redis-server started here. The outage test always uses its own throwaway redis-server.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { startGateway, type GatewayRuntime } from '@crm/gateway';
import { rawGraphQL, type RawResult } from '@crm/testing';
import { startTestStack, type TestStack, type TestUser } from '@crm/platform';

const POINTS = 20;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

interface Throwaway {
  url: string;
  port: number;
  stop(): void;
}

async function throwawayRedis(): Promise<Throwaway> {
  const port = await freePort();
  execFileSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
  for (let i = 0; i < 50; i++) {
    try {
      if (
        execFileSync('redis-cli', ['-p', String(port), 'ping'])
          .toString()
          .trim() === 'PONG'
      )
        break;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
      } catch {
        /* shutdown closes the connection: redis-cli may report it */
      }
    },
  };
}

let own: Throwaway | undefined;
let stack: TestStack;
let replica: GatewayRuntime;
const extra: GatewayRuntime[] = [];
const throwaways: Throwaway[] = [];

beforeAll(async () => {
  let redisUrl = process.env.REDIS_URL;
  if (!redisUrl) {
    own = await throwawayRedis();
    redisUrl = own.url;
  }
  stack = await startTestStack({
    only: ['auth'],
    env: {
      REDIS_URL: redisUrl,
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_POINTS: String(POINTS),
      RATE_LIMIT_WINDOW_SECONDS: '600',
      TRUST_PROXY_HOPS: '1',
      LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT: '8',
    },
  });
  replica = await startGateway({ config: stack.config, supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  for (const g of extra) await g.stop().catch(() => undefined);
  await replica?.stop();
  await stack?.stop();
  own?.stop();
  for (const t of throwaways) t.stop();
});

type Result = RawResult;
const call = rawGraphQL;

const code = (r: Result) => r.body.errors?.[0]?.extensions?.code;
const ME = '{ me { id } }';

describe('rate limits', () => {
  let user: TestUser;
  beforeAll(async () => {
    user = await stack.user();
  });

  test('a burst over the limit from two replicas sharing Redis gets 429 RATE_LIMITED on both', async () => {
    const urls = [stack.gatewayUrl, replica.url];
    const results: Result[] = [];
    for (let i = 0; i < POINTS + 4; i++) results.push(await call(urls[i % 2]!, ME, { token: user.token }));

    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    // One budget for both replicas: exactly POINTS plain queries pass, across the two.
    expect(ok).toHaveLength(POINTS);
    expect(refused).toHaveLength(4);
    expect(results.slice(0, POINTS).every((r) => r.status === 200 && r.body.data.me.id === user.id)).toBe(true);
    expect(new Set(refused.map((r) => r.headers.get('ratelimit-limit')))).toEqual(new Set([String(POINTS)]));

    const first = results[0]!;
    expect(first.headers.get('ratelimit-limit')).toBe(String(POINTS));
    expect(first.headers.get('ratelimit-remaining')).toBe(String(POINTS - 1));
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    expect(results[POINTS - 1]!.headers.get('ratelimit-remaining')).toBe('0');

    for (const r of refused) {
      expect(code(r)).toBe('RATE_LIMITED');
      expect(r.body.errors?.[0]?.message).toMatch(/Rate limit exceeded/);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(r.headers.get('ratelimit-remaining')).toBe('0');
      expect(r.body.data ?? null).toBeNull();
    }
    // Both replicas refuse (the budget lives in Redis, not in either process).
    expect(refused.some((_, i) => i % 2 === 0)).toBe(true);
    const viaReplica = await call(replica.url, ME, { token: user.token });
    const viaFirst = await call(stack.gatewayUrl, ME, { token: user.token });
    expect([viaReplica.status, viaFirst.status]).toEqual([429, 429]);
    // Other callers keep their own budgets (per user; per IP when anonymous).
    const someoneElse = await call(replica.url, '{ __typename }', { ip: '10.9.9.9' });
    expect(someoneElse.status).toBe(200);
  });

  test('points are weighted by the operation’s estimated cost', async () => {
    const u = await stack.user();
    // users(first: 100) { edges { node { id } } } costs 1 + 100 × (1 + 1) = 201 → ceil(201 / 50) = 5 points.
    const costly = await call(replica.url, '{ users(first: 100) { edges { node { id } } } }', { token: u.token });
    expect(code(costly)).toBe('FORBIDDEN'); // SALES may not list users, but the estimate is charged first
    expect(costly.headers.get('ratelimit-remaining')).toBe(String(POINTS - 5));
    const plain = await call(stack.gatewayUrl, ME, { token: u.token });
    expect(plain.headers.get('ratelimit-remaining')).toBe(String(POINTS - 6));
    // A request that never reaches an operation still costs a point.
    const broken = await call(stack.gatewayUrl, '{ me { id }', { token: u.token });
    expect(broken.status).toBe(400);
    expect(broken.headers.get('ratelimit-remaining')).toBe(String(POINTS - 7));
  });
});

describe('login protection', () => {
  const LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken user { id } } }';

  test('failed attempts per account and IP: the 6th attempt is refused; another IP still logs in; success resets', async () => {
    const victim = await stack.user();
    const ip = '10.1.0.1';
    for (let i = 0; i < stack.config.LOGIN_FAILS_PER_ACCOUNT_IP; i++) {
      const r = await call(stack.gatewayUrl, LOGIN, { variables: { e: victim.email, p: 'wrong-password' }, ip });
      expect(code(r)).toBe('UNAUTHENTICATED');
    }
    // Blocked now, even with the right password (inline email, other replica: same limiter).
    const blocked = await call(replica.url, `mutation { login(email: "${victim.email.toUpperCase()}", password: "password-1234") { accessToken } }`, { ip });
    expect(blocked.status).toBe(429);
    expect(code(blocked)).toBe('RATE_LIMITED');
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(stack.config.LOGIN_BLOCK_SECONDS);
    // The account is not locked out for everyone: the owner logs in from another address.
    const owner = await call(stack.gatewayUrl, LOGIN, { variables: { e: victim.email, p: 'password-1234' }, ip: '10.1.0.2' });
    expect(owner.body.data?.login.user.id).toBe(victim.id);
  });

  test('consecutive failures of one account from many IPs block it for a bounded time', async () => {
    const victim = await stack.user();
    const max = stack.config.LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT;
    for (let i = 0; i < max; i++) {
      const r = await call(i % 2 ? replica.url : stack.gatewayUrl, LOGIN, { variables: { e: victim.email, p: `guess-${i}-xxxxx` }, ip: `10.2.0.${i + 1}` });
      expect(code(r)).toBe('UNAUTHENTICATED');
    }
    const blocked = await call(stack.gatewayUrl, LOGIN, { variables: { e: victim.email, p: 'password-1234' }, ip: '10.2.1.1' });
    expect(code(blocked)).toBe('RATE_LIMITED');
    expect(Number(blocked.headers.get('retry-after'))).toBeLessThanOrEqual(stack.config.LOGIN_BLOCK_SECONDS);
  });

  test('a success resets the consecutive count', async () => {
    const u = await stack.user();
    const max = stack.config.LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < max - 1; i++) {
        const r = await call(stack.gatewayUrl, LOGIN, { variables: { e: u.email, p: 'wrong-password' }, ip: `10.3.${round}.${i + 1}` });
        expect(code(r)).toBe('UNAUTHENTICATED');
      }
      const ok = await call(stack.gatewayUrl, LOGIN, { variables: { e: u.email, p: 'password-1234' }, ip: `10.3.${round}.200` });
      expect(ok.body.data?.login.user.id).toBe(u.id);
    }
  });

  test('one login per request: aliased logins are refused', async () => {
    const r = await call(stack.gatewayUrl, 'mutation { a: login(email: "a@x.io", password: "x") { accessToken } b: login(email: "b@x.io", password: "y") { accessToken } }', {
      ip: '10.4.0.1',
    });
    expect(r.status).toBe(400);
    expect(code(r)).toBe('BAD_USER_INPUT');
  });
});

test('Redis stopped mid-run: the insurance limiter takes over — no crash, still limited', async () => {
  const redis = await throwawayRedis();
  throwaways.push(redis);
  const limit = 5;
  const g = await startGateway({
    config: { ...stack.config, REDIS_URL: redis.url, RATE_LIMIT_POINTS: limit },
    supergraphSdl: stack.supergraphSdl,
    port: 0,
    host: '127.0.0.1',
  });
  extra.push(g);
  const ip = '10.5.0.1';
  const before = await call(g.url, '{ __typename }', { ip });
  expect(before.status).toBe(200);
  expect(before.headers.get('ratelimit-remaining')).toBe(String(limit - 1));

  redis.stop();

  const after: Result[] = [];
  for (let i = 0; i < limit + 3; i++) after.push(await call(g.url, '{ __typename }', { ip }));
  // Degraded to a per-replica in-memory budget: some pass, then 429 — never a 500, never unlimited.
  expect(after.every((r) => r.status === 200 || r.status === 429)).toBe(true);
  expect(after[0]!.status).toBe(200);
  expect(after.filter((r) => r.status === 200).length).toBeLessThanOrEqual(limit);
  expect(code(after[after.length - 1]!)).toBe('RATE_LIMITED');
  for (const r of after) expect(r.headers.get('ratelimit-limit')).toBe(String(limit));

  const health = await fetch(new URL('/health', g.url));
  expect(health.status).toBe(200);
  const ready = (await (await fetch(new URL('/ready', g.url))).json()) as { checks: Record<string, boolean> };
  expect(ready.checks.redis).toBe(false);
});
