/**
 * Live subscriptions through the gateway (graphql-ws), fed by the bus (real Kafka in CI), resolved
 * through federation with each subscriber's identity: notifications reach their recipient only,
 * approval decisions reach who may see them, bad tokens are refused, every replica delivers, and
 * a thousand subscribers on one gateway all get the event. Outcomes only, never timings.
 */
import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { eventually, signTestAccessToken } from '@crm/testing';
import { startGateway, type GatewayRuntime } from '@crm/gateway';
import { dataOf, startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
const clients: Client[] = [];
beforeAll(async () => {
  // The fan-out test holds 500 sockets for each of two users from one address: above the default
  // per-user and per-IP caps (hostile-security.test.ts checks those).
  stack = await startTestStack({ env: { SUBSCRIPTION_CONNECTIONS_PER_USER: '1000', SUBSCRIPTION_CONNECTIONS_PER_IP: '2000' } });
}, 180_000);
afterAll(async () => {
  await Promise.all(clients.map(async (c) => c.dispose()));
  await stack?.stop();
});

const wsUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');
const statsUrl = (httpUrl: string) => httpUrl.replace(/\/graphql$/, '/graphql/live-stats');

interface Live<T = any> {
  results: T[];
  errors: unknown[];
  completed: boolean;
  closed?: { code: number; reason: string };
}

function connect(httpUrl: string, token: string | undefined, closed?: (e: { code: number; reason: string }) => void): Client {
  const client = createClient({
    url: wsUrl(httpUrl),
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
    connectionParams: token === undefined ? {} : { authorization: `Bearer ${token}` },
    on: { closed: (e) => closed?.(e as { code: number; reason: string }) },
  });
  clients.push(client);
  return client;
}

function live<T = any>(httpUrl: string, token: string | undefined, query: string, variables?: Record<string, unknown>): Live<T> & { client: Client } {
  const state: Live<T> & { client: Client } = { results: [], errors: [], completed: false, client: undefined as unknown as Client };
  state.client = connect(httpUrl, token, (e) => {
    state.closed = { code: e.code, reason: e.reason };
  });
  state.client.subscribe<T>(
    { query, ...(variables ? { variables } : {}) },
    {
      next: (r) => (r.errors ? state.errors.push(r.errors) : state.results.push(r.data as T)),
      error: (e) => state.errors.push(e),
      complete: () => {
        state.completed = true;
      },
    },
  );
  return state;
}

async function liveStats(httpUrl: string): Promise<{ subscriptions: number; groups: number; connections: number; consumer: boolean }> {
  const res = await fetch(statsUrl(httpUrl));
  return (await res.json()) as { subscriptions: number; groups: number; connections: number; consumer: boolean };
}

/** Subscribing has no acknowledgement in graphql-ws: wait until the gateway has registered them. */
const registered = (httpUrl: string, n: number) => eventually(async () => (await liveStats(httpUrl)).subscriptions >= n, { timeoutMs: 30_000 });
const drained = (httpUrl: string) => eventually(async () => (await liveStats(httpUrl)).subscriptions === 0, { timeoutMs: 30_000 });

async function closeAll(...lives: { client: Client }[]) {
  await Promise.all(lives.map(async (l) => l.client.dispose()));
}

async function customerOf(rep: TestUser, name: string): Promise<string> {
  const r = await rep.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, { input: { name } });
  if (!r.data?.createCustomer) throw new Error(`createCustomer failed: ${JSON.stringify(r.errors)}`);
  return r.data.createCustomer.id;
}

/** Right after createCustomer: the opportunity subgraph must accept it at once. */
async function requestApproval(rep: TestUser, customerId: string, title: string): Promise<string> {
  const r = await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id status } }`, { input: { customerId, title, amount: 1000 } });
  return dataOf<{ id: string }>(r, 'requestApproval').id;
}

afterEach(async () => {
  await drained(stack.gatewayUrl);
});

test('a MANAGER gets the APPROVAL_REQUESTED notification, resolved across subgraphs; another SALES user gets nothing', async () => {
  const sales = await stack.user('SALES', 'Sam Seller');
  const other = await stack.user('SALES', 'Olga Other');
  const manager = await stack.user('MANAGER', 'Mia Manager');
  const NOTIFICATIONS = 'subscription { notificationAdded { type title recipient { name } } }';
  const mine = live(stack.gatewayUrl, manager.token, NOTIFICATIONS);
  const theirs = live(stack.gatewayUrl, other.token, NOTIFICATIONS);
  await registered(stack.gatewayUrl, 2);

  const customerId = await customerOf(sales, `Live Co ${randomUUID().slice(0, 6)}`);
  const title = `Discount ${randomUUID().slice(0, 6)}`;
  await requestApproval(sales, customerId, title);

  const got = await eventually(async () => mine.results.find((r) => r.notificationAdded.type === 'APPROVAL_REQUESTED'), { timeoutMs: 30_000 });
  expect(got.notificationAdded.recipient).toEqual({ name: 'Mia Manager' });
  expect(got.notificationAdded.title).toContain(title);
  expect(mine.errors).toEqual([]);
  // The event was fanned out to every group at once (filter first), so by now `other` was skipped.
  expect(theirs.results).toEqual([]);
  expect(theirs.errors).toEqual([]);
  await closeAll(mine, theirs);
});

test('approvalStatusChanged delivers the decision with fields of other subgraphs, to who may see it', async () => {
  const sales = await stack.user('SALES', 'Rita Rep');
  const other = await stack.user('SALES', 'Nina Nosy');
  const manager = await stack.user('MANAGER', 'Max Manager');
  const customerName = `Decided Ltd ${randomUUID().slice(0, 6)}`;
  const customerId = await customerOf(sales, customerName);
  const requestId = await requestApproval(sales, customerId, 'Big deal');

  const CHANGES = `subscription Changes { change: approvalStatusChanged { id status ...Who } }
    fragment Who on ApprovalRequest { customer { name assignedRep { name } } requester { name } }`;
  const managerLive = live(stack.gatewayUrl, manager.token, CHANGES);
  const requesterLive = live(stack.gatewayUrl, sales.token, CHANGES);
  const otherLive = live(stack.gatewayUrl, other.token, CHANGES);
  await registered(stack.gatewayUrl, 3);

  const decided = await manager.gql(`mutation($id: ID!) { approveRequest(id: $id, comment: "ok") { id status } }`, { id: requestId });
  expect(decided.data?.approveRequest.status).toBe('APPROVED');

  const approved = (l: Live) => l.results.find((r) => r.change.id === requestId && r.change.status === 'APPROVED');
  const seen = await eventually(async () => approved(managerLive), { timeoutMs: 30_000 });
  expect(seen.change).toEqual({
    id: requestId,
    status: 'APPROVED',
    customer: { name: customerName, assignedRep: { name: 'Rita Rep' } },
    requester: { name: 'Rita Rep' },
  });
  await eventually(async () => approved(requesterLive), { timeoutMs: 30_000 });
  expect(otherLive.results.filter((r) => r.change.id === requestId)).toEqual([]);
  expect([managerLive.errors, requesterLive.errors, otherLive.errors]).toEqual([[], [], []]);
  await closeAll(managerLive, requesterLive, otherLive);
});

test('a missing, invalid or expired token is refused at connect (4401); a token that expires closes the socket', async () => {
  const u = await stack.user('SALES');
  const expired = signTestAccessToken(stack.config, { role: 'SALES', email: u.email, exp: Math.floor(Date.now() / 1000) - 10 }, { subject: u.id });
  const Q = 'subscription { notificationAdded { id } }';
  const cases = [live(stack.gatewayUrl, 'garbage', Q), live(stack.gatewayUrl, undefined, Q), live(stack.gatewayUrl, expired, Q)];
  await eventually(async () => cases.every((c) => c.closed));
  expect(cases.map((c) => c.closed)).toEqual([
    { code: 4401, reason: 'Invalid access token' },
    { code: 4401, reason: 'Missing access token' },
    { code: 4401, reason: 'Access token expired' },
  ]);
  expect(cases.map((c) => c.results)).toEqual([[], [], []]);

  const shortLived = signTestAccessToken(stack.config, { role: 'SALES', email: u.email }, { subject: u.id, expiresIn: 2 });
  const ending = live(stack.gatewayUrl, shortLived, Q);
  await eventually(async () => ending.closed, { timeoutMs: 20_000 });
  expect(ending.closed).toEqual({ code: 4401, reason: 'Token expired' });
});

test("the token may come in the upgrade request's Authorization header; two tokens of different users get 4403", async () => {
  const a = await stack.user('SALES');
  const b = await stack.user('SALES');
  const withHeader = (token: string) =>
    class extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { authorization: `Bearer ${token}` } });
      }
    };
  const track = (client: Client, into: { closed?: { code: number; reason: string }; errors: unknown[] }) => {
    client.on('closed', (e) => {
      into.closed = { code: (e as { code: number }).code, reason: (e as { reason: string }).reason };
    });
    client.subscribe({ query: 'subscription { notificationAdded { id } }' }, { next: () => {}, error: (e) => into.errors.push(e), complete: () => {} });
  };
  const before = (await liveStats(stack.gatewayUrl)).subscriptions;
  const headerOnly = { errors: [] as unknown[] } as { closed?: { code: number; reason: string }; errors: unknown[] };
  const ok = createClient({ url: wsUrl(stack.gatewayUrl), webSocketImpl: withHeader(a.token), retryAttempts: 0, lazy: true });
  clients.push(ok);
  track(ok, headerOnly);
  await registered(stack.gatewayUrl, before + 1);
  expect(headerOnly.closed).toBeUndefined();

  const conflicting = { errors: [] as unknown[] } as { closed?: { code: number; reason: string }; errors: unknown[] };
  const bad = createClient({
    url: wsUrl(stack.gatewayUrl),
    webSocketImpl: withHeader(a.token),
    retryAttempts: 0,
    lazy: true,
    connectionParams: { authorization: `Bearer ${b.token}` },
  });
  clients.push(bad);
  track(bad, conflicting);
  await eventually(async () => conflicting.closed);
  expect(conflicting.closed).toEqual({ code: 4403, reason: 'Conflicting credentials' });
  await Promise.all([ok.dispose(), bad.dispose()]);
});

test('operations are validated against the API schema and limits', async () => {
  const u = await stack.user('SALES');
  const unknown = live(stack.gatewayUrl, u.token, 'subscription { notificationAdded { nope } }');
  const query = live(stack.gatewayUrl, u.token, '{ __typename }');
  await eventually(async () => unknown.errors.length > 0 && query.errors.length > 0);
  expect(JSON.stringify(unknown.errors)).toMatch(/Cannot query field .{0,4}nope/);
  expect(JSON.stringify(query.errors)).toContain('Only subscriptions are served over WebSocket');
  await closeAll(unknown, query);
});

test('two gateway replicas both deliver (each its own consumer group); a stopped replica tells its clients to reconnect', async () => {
  let second: GatewayRuntime | undefined;
  try {
    second = await startGateway({ config: stack.config, bus: stack.bus, supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
    const sales = await stack.user('SALES');
    const manager = await stack.user('MANAGER');
    const Q = 'subscription { approvalStatusChanged { id status requester { id } } }';
    const one = live(stack.gatewayUrl, manager.token, Q);
    const two = live(second.url, manager.token, Q);
    await registered(stack.gatewayUrl, 1);
    await registered(second.url, 1);
    const customerId = await customerOf(sales, 'Replicated Inc');
    const requestId = await requestApproval(sales, customerId, 'Replica check');
    const pending = (l: Live) => l.results.find((r) => r.approvalStatusChanged.id === requestId);
    const [a, b] = await Promise.all([eventually(async () => pending(one), { timeoutMs: 30_000 }), eventually(async () => pending(two), { timeoutMs: 30_000 })]);
    expect(a).toEqual({ approvalStatusChanged: { id: requestId, status: 'PENDING', requester: { id: sales.id } } });
    expect(b).toEqual(a);

    // clean shutdown of a replica: the socket closes 1012 (graphql-ws clients retry it) and no `complete`
    // ends the subscription (this client has retries off, so it sees the close as its error)
    await second.stop();
    second = undefined;
    await eventually(async () => two.closed);
    expect(two.closed).toEqual({ code: 1012, reason: 'Service restart' });
    expect(two.completed).toBe(false);
    await closeAll(one, two);
  } finally {
    await second?.stop();
  }
});

test('1,000 concurrent subscribers on one gateway all receive the event', async () => {
  const N = 1000;
  const sales = await stack.user('SALES');
  const manager = await stack.user('MANAGER');
  const admin = await stack.admin();
  const Q = 'subscription { approvalStatusChanged { id status customer { name } } }';
  const lives: (Live & { client: Client })[] = [];
  // Connected in batches (a burst of 1,000 handshakes overflows the listen backlog); all held at once.
  for (let batch = 0; batch < N / 100; batch++) {
    for (let i = 0; i < 100; i++) lives.push(live(stack.gatewayUrl, (i % 2 ? admin : manager).token, Q));
    await registered(stack.gatewayUrl, lives.length);
  }
  const stats = await liveStats(stack.gatewayUrl);
  expect(stats.groups).toBe(2); // identical subscriptions share one resolution per event
  const customerId = await customerOf(sales, 'Crowd Corp');
  const requestId = await requestApproval(sales, customerId, 'For everyone');
  const received = () => lives.filter((l) => l.results.some((r) => r.approvalStatusChanged.id === requestId)).length;
  await eventually(async () => received() === N, { timeoutMs: 60_000, intervalMs: 250 });
  expect(received()).toBe(N);
  expect(lives.every((l) => l.errors.length === 0)).toBe(true);
  await closeAll(...lives);
}, 180_000);
