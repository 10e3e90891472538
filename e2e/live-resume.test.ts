/**
 * The resumable live feed (`notificationAdded(after: ID)`, docs/subscriptions.md) against real Kafka,
 * Postgres and Redis in CI: a gateway serving a subscribed client is stopped, notifications are created
 * while it is down, it starts again, and the client resumes with the id of the last notification it
 * got: every one created after it, oldest first, then the live ones, none twice. Stopping tells the
 * client to reconnect (close 1012, no `complete`). An `after` that is not the caller's is refused
 * (BAD_USER_INPUT) and subscribes nothing. Outcomes only; the figures printed go to docs/faults.md.
 */
import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { eventually } from '@crm/testing';
import { startGateway, type GatewayRuntime } from '@crm/gateway';
import { dataOf, identityOf, startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
const gateways = new Set<GatewayRuntime>();
const clients: Client[] = [];
beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await Promise.all(clients.map(async (c) => c.dispose()));
  for (const g of gateways) await g.stop().catch(() => undefined);
  await stack?.stop();
});

interface Note {
  id: string;
  type: string;
  title: string;
  entityId: string | null;
}

const FEED = 'subscription Feed($after: ID) { notificationAdded(after: $after) { id type title entityId } }';
const wsUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');
const stats = async (httpUrl: string) => (await (await fetch(httpUrl.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number };
const registered = (httpUrl: string, n = 1) => eventually(async () => (await stats(httpUrl)).subscriptions >= n, { timeoutMs: 60_000 });

/** A gateway of its own for the subscribed client (the stack's gateway takes the writes of the (b) story). */
async function liveGateway(): Promise<GatewayRuntime> {
  const g = await startGateway({ config: stack.config, bus: stack.bus, supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
  gateways.add(g);
  return g;
}

async function stopGateway(g: GatewayRuntime): Promise<void> {
  await g.stop();
  gateways.delete(g);
}

const ASSIGN = 'mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }';

async function newCustomer(manager: TestUser, name: string): Promise<string> {
  return dataOf<{ id: string }>(await manager.gql('mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }', { input: { name } }), 'createCustomer').id;
}

/** The rep's notifications in the feed's order, as analytics keeps them. */
async function stored(rep: TestUser): Promise<{ id: string; entity_id: string | null }[]> {
  return stack.sql('analytics', 'SELECT id, entity_id FROM notifications WHERE recipient_id = ? AND archived_at IS NULL ORDER BY seq', [rep.id]);
}

test('(a) ten notifications created while the gateway is down: the client reconnects by itself and gets all ten in order, then the live ones, none twice', async () => {
  const rep = await stack.user('SALES', 'Rita Resume');
  const manager = await stack.user('MANAGER');
  let gateway = await liveGateway();
  let current = gateway.url;

  // A client as docs/subscriptions.md shows: graphql-ws retries (1012 and refused connections alike),
  // and the variables it subscribes with are kept and given the last id received, so every
  // re-subscription after a reconnect resumes from there.
  const variables: { after: string | null } = { after: null };
  const got: Note[] = [];
  const errors: unknown[] = [];
  const closes: number[] = [];
  let completed = false;
  const client = createClient({
    url: () => wsUrl(current),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${rep.token}` },
    retryAttempts: Infinity,
    // graphql-ws retries close codes by default, not a refused connection (the gateway still down): retry those too.
    shouldRetry: () => true,
    retryWait: () => new Promise((r) => setTimeout(r, 200)),
    on: { closed: (e) => closes.push((e as { code: number }).code) },
  });
  clients.push(client);
  client.subscribe<{ notificationAdded: Note }>(
    { query: FEED, variables },
    {
      next: (r) => {
        if (r.errors || !r.data) return void errors.push(r.errors);
        got.push(r.data.notificationAdded);
        variables.after = r.data.notificationAdded.id;
      },
      error: (e) => errors.push(e),
      complete: () => {
        completed = true;
      },
    },
  );
  await registered(gateway.url);

  // The first one arrives live (no `after` yet): the client now has an id to resume from.
  const first = await newCustomer(manager, `Anchor ${randomUUID().slice(0, 6)}`);
  dataOf(await manager.gql(ASSIGN, { id: first, rep: rep.id }), 'assignCustomer');
  await eventually(async () => got.length === 1, { timeoutMs: 60_000 });
  expect(got[0]!.entityId).toBe(first);

  // The gateway stops: the client is told to reconnect, and keeps trying while nothing listens.
  const customers: string[] = [];
  for (let i = 0; i < 12; i++) customers.push(await newCustomer(manager, `Down ${i} ${randomUUID().slice(0, 6)}`));
  const downAt = Date.now();
  await stopGateway(gateway);
  await eventually(async () => closes.length > 0);
  expect(closes[0]).toBe(1012);

  // Ten notifications while no gateway runs: written straight to the customer subgraph (signed as
  // the gateway would), their notifications made by analytics from the events.
  for (const id of customers.slice(0, 10)) {
    dataOf(await stack.signed('customer', identityOf(manager), ASSIGN, { id, rep: rep.id }), 'assignCustomer');
  }
  await eventually(async () => (await stored(rep)).length === 11, { timeoutMs: 60_000 });
  expect(got).toHaveLength(1);

  // The gateway starts again (another address: a load balancer's job; the client's url follows it).
  gateway = await liveGateway();
  current = gateway.url;
  const upAt = Date.now();
  // One more at once, racing the backfill; and one once the client is surely subscribed again: live.
  dataOf(await manager.gql(ASSIGN, { id: customers[10], rep: rep.id }), 'assignCustomer');
  await eventually(async () => got.length >= 11, { timeoutMs: 60_000 }).catch((err) => {
    throw new Error(`${err}: got ${got.length}, errors ${JSON.stringify(errors)}, closes ${JSON.stringify(closes.slice(0, 5))}…${closes.length}`);
  });
  const backfilledAt = Date.now();
  await registered(gateway.url);
  dataOf(await manager.gql(ASSIGN, { id: customers[11], rep: rep.id }), 'assignCustomer');
  await eventually(async () => got.length >= 13, { timeoutMs: 60_000 });

  const order = await stored(rep);
  expect(got.map((n) => n.id)).toEqual(order.map((n) => n.id)); // all, in order, none twice
  expect(new Set(got.map((n) => n.id)).size).toBe(13);
  // Every assignment's notification, once. (Their order is the recipient's notification order above:
  // analytics' commit order. Different customers' events travel in different partitions, so it need
  // not be the order the assignments were made in.)
  expect(got.map((n) => n.entityId).sort()).toEqual([first, ...customers].sort());
  expect(got.every((n) => n.type === 'CUSTOMER_ASSIGNED')).toBe(true);
  expect(errors).toEqual([]);
  expect(completed).toBe(false);
  console.log(
    `live-resume (a): gateway down ${((upAt - downAt) / 1000).toFixed(1)} s; 10 backfilled (+1 racing) within ${((backfilledAt - upAt) / 1000).toFixed(1)} s of the restart; ${got.length} delivered, ${got.length - new Set(got.map((n) => n.id)).size} twice, reconnect attempts ${closes.length}`,
  );
}, 240_000);

test('(b) Must show: subscribed, gateway stopped, five customers assigned, gateway started, resume with after: exactly those five in order, then a live one', async () => {
  const rep = await stack.user('SALES', 'Nina New');
  const manager = await stack.user('MANAGER');
  let gateway = await liveGateway();

  // A client subscribes, as a new user would, and gets one notification live.
  const seen: Note[] = [];
  const firstClient = createClient({ url: wsUrl(gateway.url), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${rep.token}` }, retryAttempts: 0 });
  clients.push(firstClient);
  let closed: number | undefined;
  firstClient.subscribe<{ notificationAdded: Note }>(
    { query: FEED },
    { next: (r) => void (r.data && seen.push(r.data.notificationAdded)), error: (e) => (closed = (e as { code?: number }).code), complete: () => undefined },
  );
  await registered(gateway.url);
  const welcome = await newCustomer(manager, `Welcome ${randomUUID().slice(0, 6)}`);
  dataOf(await manager.gql(ASSIGN, { id: welcome, rep: rep.id }), 'assignCustomer');
  const [last] = await eventually(async () => (seen.length > 0 ? seen : undefined), { timeoutMs: 60_000 });

  // The gateway stops; five customers are assigned to the user (through the API, another replica).
  await stopGateway(gateway);
  await eventually(async () => closed === 1012);
  const five: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const id = await newCustomer(manager, `Five ${i} ${randomUUID().slice(0, 6)}`);
    dataOf(await manager.gql(ASSIGN, { id, rep: rep.id }), 'assignCustomer');
    five.push(id);
  }
  await eventually(async () => (await stored(rep)).length === 6, { timeoutMs: 60_000 });

  // The gateway starts; the client resumes with the last id it got.
  gateway = await liveGateway();
  const got: Note[] = [];
  const errors: unknown[] = [];
  const resumed = createClient({ url: wsUrl(gateway.url), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${rep.token}` }, retryAttempts: 0 });
  clients.push(resumed);
  const resumedAt = Date.now();
  resumed.subscribe<{ notificationAdded: Note }>(
    { query: FEED, variables: { after: last!.id } },
    { next: (r) => (r.data ? got.push(r.data.notificationAdded) : errors.push(r.errors)), error: (e) => errors.push(e), complete: () => undefined },
  );
  await eventually(async () => got.length >= 5, { timeoutMs: 60_000 });
  const fiveAt = Date.now();
  // exactly those five (in the rep's notification order: analytics' commit order, see (a))
  expect(got.map((n) => n.entityId).sort()).toEqual([...five].sort());
  expect(got.map((n) => n.id)).toEqual((await stored(rep)).slice(1, 6).map((n) => n.id));

  // Then a live one.
  await registered(gateway.url);
  const later = await newCustomer(manager, `Live ${randomUUID().slice(0, 6)}`);
  dataOf(await manager.gql(ASSIGN, { id: later, rep: rep.id }), 'assignCustomer');
  await eventually(async () => got.length >= 6, { timeoutMs: 60_000 });
  expect(got[5]!.entityId).toBe(later);
  expect(new Set(got.map((n) => n.id)).size).toBe(6);
  expect(got.map((n) => n.id)).toEqual((await stored(rep)).slice(1).map((n) => n.id));
  expect(errors).toEqual([]);
  console.log(`live-resume (b): the five backfilled ${((fiveAt - resumedAt) / 1000).toFixed(1)} s after the resumed subscribe; 6 delivered, 0 twice`);
  await stopGateway(gateway);
}, 240_000);

test("an `after` that is someone else's, unknown or malformed is refused with BAD_USER_INPUT and subscribes nothing", async () => {
  const rep = await stack.user('SALES');
  const other = await stack.user('SALES');
  const manager = await stack.user('MANAGER');
  const customer = await newCustomer(manager, `Theirs ${randomUUID().slice(0, 6)}`);
  dataOf(await manager.gql(ASSIGN, { id: customer, rep: other.id }), 'assignCustomer');
  const [theirs] = await eventually(
    async () => {
      const rows = await stored(other);
      return rows.length > 0 ? rows : undefined;
    },
    { timeoutMs: 60_000 },
  );
  const gateway = await liveGateway();
  for (const after of [theirs!.id, randomUUID(), 'not-an-id']) {
    const errors: { message: string; extensions?: { code?: string } }[][] = [];
    const client = createClient({ url: wsUrl(gateway.url), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${rep.token}` }, retryAttempts: 0 });
    clients.push(client);
    client.subscribe({ query: FEED, variables: { after } }, { next: () => undefined, error: (e) => void errors.push(e as never), complete: () => undefined });
    await eventually(async () => errors.length > 0, { timeoutMs: 30_000 });
    expect(errors[0]![0]!.extensions?.code).toBe('BAD_USER_INPUT');
    expect(errors[0]![0]!.message).toContain('is not one of your notifications');
    await client.dispose();
  }
  expect((await stats(gateway.url)).subscriptions).toBe(0);
  // Someone else's notification id told the caller nothing about it: same answer as an unknown one.
  await stopGateway(gateway);
}, 180_000);
