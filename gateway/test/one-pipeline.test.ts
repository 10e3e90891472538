/**
 * One rule set for HTTP and WebSocket (issue 28 item 4). A subscription's document goes through the
 * very pipeline a query goes through (gateway/src/pipeline.ts): the same subscription document sent
 * over HTTP and as a graphql-ws subscribe is refused with the same code (and limit) for depth,
 * aliases, cost and, in production with TRUSTED_DOCUMENTS=only, for not being a trusted document.
 * And the gateway's own per-event resolutions are no client operation: a subscriber who has spent
 * its whole rate-limit budget still receives every event, and the events spend none of it.
 * The gateway alone, over a stub subgraph and the in-process bus.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { readConfig, type PlatformConfig } from '@crm/config';
import { MemoryBus } from '@crm/events';
import { generateKeySet, keyEnvFor } from '@crm/runtime';
import { eventually, signTestAccessToken } from '@crm/testing';
import { startGateway } from '../src/server';
import { FEDERATION_LINK, startStubSubgraphs, type StubSubgraphs } from './support/stub-subgraphs';
import { notificationMessage as notificationEvent } from './support/live-events';

jest.setTimeout(120_000);

const TYPE_DEFS = `${FEDERATION_LINK}
  type Notification @key(fields: "id") { id: ID! title: String! parent: Notification related(first: Int): [Notification!]! }
  type Query { notification(id: ID!): Notification hello: String }
  type Subscription { notificationAdded(after: ID): Notification! }`;

const resolvers = {
  Query: {
    notification: (_: unknown, { id }: { id: string }) => ({ id, title: `title ${id}` }),
    hello: () => 'hi',
  },
  Notification: { parent: () => null, related: () => [] },
};

interface TestGateway {
  config: PlatformConfig;
  /** The configuration that signs access tokens as auth would (its AUTH_SIGNING_KEY). */
  signer: PlatformConfig;
  url: string;
  bus: MemoryBus;
  stop(): Promise<void>;
}

let stubs: StubSubgraphs;
beforeAll(async () => {
  stubs = await startStubSubgraphs({ analytics: { typeDefs: TYPE_DEFS, resolvers } });
});
afterAll(async () => {
  await stubs?.stop();
});

async function startTestGateway(env: Record<string, string>, authSigningKey?: string): Promise<TestGateway> {
  const config = readConfig(process.env, { NODE_ENV: 'test', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', KAFKA_NAMESPACE: `t${randomBytes(4).toString('hex')}.`, ...env });
  const signer = authSigningKey ? readConfig(process.env, { NODE_ENV: 'test', AUTH_SIGNING_KEY: authSigningKey }) : config;
  const bus = new MemoryBus();
  const gateway = await startGateway({ config, bus, supergraphSdl: stubs.supergraphSdl, port: 0, host: '127.0.0.1' });
  return {
    config,
    signer,
    url: gateway.url,
    bus,
    async stop() {
      await gateway.stop();
      await bus.close();
    },
  };
}

const tokenFor = (gw: TestGateway, userId = randomUUID()) =>
  signTestAccessToken(gw.signer, { role: 'SALES', email: `${userId}@test.local`, tv: 0 }, { subject: userId, expiresIn: 300 });

interface Answer {
  code: unknown;
  limit: unknown;
  message: string;
}

/** POST over HTTP: the first error's code and limit, and the RateLimit-Remaining header. */
async function overHttp(url: string, token: string, query: string): Promise<Answer & { remaining: string | null; data: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };
  const first = body.errors?.[0];
  return { code: first?.extensions?.code, limit: first?.extensions?.limit, message: first?.message ?? '', remaining: res.headers.get('ratelimit-remaining'), data: body.data };
}

const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.dispose();
});

function wsClient(url: string, token: string): Client {
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` } });
  clients.push(client);
  return client;
}

/** The subscribe's refusal over graphql-ws (its first error), or 'accepted' when none came in 10 s. */
function refusalOverWs(url: string, token: string, query: string): Promise<Answer | 'accepted'> {
  const client = wsClient(url, token);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('accepted'), 10_000);
    client.subscribe(
      { query },
      {
        next: () => undefined,
        error: (e) => {
          clearTimeout(timer);
          const first = (Array.isArray(e) ? e[0] : e) as { message?: string; extensions?: Record<string, unknown> };
          resolve({ code: first?.extensions?.code, limit: first?.extensions?.limit, message: String(first?.message ?? e) });
        },
        complete: () => undefined,
      },
    );
  });
}

/** Live subscriptions registered on this gateway (development: /graphql/live-stats). */
const liveCount = async (url: string) => ((await (await fetch(url.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number }).subscriptions;

describe('the same refusal over HTTP and WebSocket', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ MAX_DEPTH: '4', MAX_ALIASES: '2', MAX_COST: '30' });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  test.each([
    ['depth', 'subscription { notificationAdded { parent { parent { parent { parent { id } } } } } }', 'GRAPHQL_VALIDATION_FAILED', 'MAX_DEPTH'],
    ['aliases', 'subscription { notificationAdded { a: title b: title c: title } }', 'GRAPHQL_VALIDATION_FAILED', 'MAX_ALIASES'],
    ['cost', 'subscription { notificationAdded { related(first: 50) { id } } }', 'COST_LIMIT_EXCEEDED', undefined],
    ['unknown field', 'subscription { notificationAdded { nope } }', 'GRAPHQL_VALIDATION_FAILED', undefined],
  ])('%s', async (_name, query, code, limit) => {
    const token = tokenFor(gw);
    const http = await overHttp(gw.url, token, query);
    const ws = await refusalOverWs(gw.url, token, query);
    expect(ws).not.toBe('accepted');
    expect({ code: http.code, limit: http.limit }).toEqual({ code, limit });
    expect(ws).toEqual({ code: http.code, limit: http.limit, message: http.message });
  });

  test('within the limits the same subscription is accepted over WebSocket', async () => {
    const token = tokenFor(gw);
    const before = await liveCount(gw.url);
    const client = wsClient(gw.url, token);
    const errors: unknown[] = [];
    client.subscribe(
      { query: 'subscription { notificationAdded { parent { id } related(first: 2) { id } } }' },
      { next: () => undefined, error: (e) => void errors.push(e), complete: () => undefined },
    );
    await eventually(async () => (await liveCount(gw.url)) > before, { timeoutMs: 15_000 });
    expect(errors).toEqual([]);
  });
});

describe('production, TRUSTED_DOCUMENTS=only', () => {
  const TRUSTED = 'subscription Trusted { notificationAdded { id title } }';
  let gw: TestGateway;
  beforeAll(async () => {
    const manifest = join(mkdtempSync(join(tmpdir(), 'pipeline-')), 'manifest.json');
    writeFileSync(manifest, JSON.stringify({ [createHash('sha256').update(TRUSTED).digest('hex')]: TRUSTED }));
    // Production starts only with the gateway's own keys; tokens are signed with auth's key of the same set.
    const keys = generateKeySet([]);
    gw = await startTestGateway({ NODE_ENV: 'production', ...keyEnvFor('gateway', keys), TRUSTED_DOCUMENTS: 'only', TRUSTED_DOCUMENTS_PATH: manifest }, keys.AUTH_SIGNING_KEY);
  });
  afterAll(async () => {
    await gw?.stop();
  });

  test('an untrusted subscription is refused over WebSocket as over HTTP (FORBIDDEN); a trusted one is accepted', async () => {
    const token = tokenFor(gw);
    const untrusted = 'subscription { notificationAdded { id title } }';
    const http = await overHttp(gw.url, token, untrusted);
    expect(http.code).toBe('FORBIDDEN');
    expect(await refusalOverWs(gw.url, token, untrusted)).toEqual({ code: 'FORBIDDEN', limit: undefined, message: http.message });
    // A typo: no "Did you mean" hint on either transport in production.
    const typo = 'subscription { notificationAded { id } }';
    const httpTypo = await overHttp(gw.url, token, typo);
    const wsTypo = await refusalOverWs(gw.url, token, typo);
    expect(wsTypo).toEqual({ code: httpTypo.code, limit: undefined, message: httpTypo.message });
    expect(httpTypo.message).not.toMatch(/Did you mean/);
    expect(await refusalOverWs(gw.url, token, TRUSTED)).toBe('accepted');
  });
});

describe("live events are the gateway's own work, outside the client rules", () => {
  const QUERY = 'subscription Feed { notificationAdded { id title } }';
  let gw: TestGateway;
  beforeAll(async () => {
    const manifest = join(mkdtempSync(join(tmpdir(), 'pipeline-')), 'manifest.json');
    // Only the subscribe and the HTTP probe are trusted: the per-event entity query is not in the manifest.
    const trusted = [QUERY, '{ hello }'];
    writeFileSync(manifest, JSON.stringify(Object.fromEntries(trusted.map((q) => [createHash('sha256').update(q).digest('hex'), q]))));
    gw = await startTestGateway({
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_POINTS: '4',
      RATE_LIMIT_WINDOW_SECONDS: '600',
      TRUSTED_DOCUMENTS: 'only',
      TRUSTED_DOCUMENTS_PATH: manifest,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  test('a subscriber at the end of its rate-limit budget still receives every event, and events spend none of it', async () => {
    const userId = randomUUID();
    const token = tokenFor(gw, userId);
    const received: string[] = [];
    const errors: unknown[] = [];
    const before = await liveCount(gw.url);
    wsClient(gw.url, token).subscribe<{ notificationAdded: { id: string } }>(
      { query: QUERY },
      {
        next: (r) => (r.errors ? errors.push(r.errors) : received.push(r.data!.notificationAdded.id)),
        error: (e) => void errors.push(e),
        complete: () => undefined,
      },
    );
    await eventually(async () => (await liveCount(gw.url)) > before, { timeoutMs: 15_000 });
    // The subscribe spent 1 point of 4 (same budget as HTTP): one HTTP query leaves 2.
    expect((await overHttp(gw.url, token, '{ hello }')).remaining).toBe('2');

    const first = [notificationEvent(userId), notificationEvent(userId), notificationEvent(userId)];
    await gw.bus.publish(first);
    await eventually(async () => received.length >= 3, { timeoutMs: 15_000 });
    // Three resolutions ran for this subscriber; its budget did not move.
    expect((await overHttp(gw.url, token, '{ hello }')).remaining).toBe('1');
    expect((await overHttp(gw.url, token, '{ hello }')).remaining).toBe('0');
    expect((await overHttp(gw.url, token, '{ hello }')).code).toBe('RATE_LIMITED');

    // Budget spent, and the entity query untrusted: events still arrive.
    const more = [notificationEvent(userId), notificationEvent(userId)];
    await gw.bus.publish(more);
    await eventually(async () => received.length >= 5, { timeoutMs: 15_000 });
    expect(received).toEqual([...first, ...more].map((e) => e.key));
    expect(errors).toEqual([]);
  });
});
