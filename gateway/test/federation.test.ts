/**
 * Federation semantics of the gateway's engine (gateway/src/engine): entities, @requires,
 * @provides, interfaces, unions, @interfaceObject, @skip/@include, null propagation and subgraph
 * errors. Four small subgraphs of our own (@apollo/subgraph) behind two gateways on the same
 * supergraph: one with the engine, one with Apollo Gateway's own executor. Every query must give
 * the expected answer, and the same answer from both (errors included: message, path, code, service).
 */
import { GraphQLError } from 'graphql';
import { rawGraphQL } from '@crm/testing';
import { readConfig } from '@crm/config';
import { startGateway, type GatewayRuntime } from '../src/server';
import { FEDERATION_LINK as LINK, startStubSubgraphs, type StubSubgraphs } from './support/stub-subgraphs';

const users = [
  { id: 'u1', name: 'Ada', email: 'ada@x.io' },
  { id: 'u2', name: 'Bob', email: null },
];
const products = [
  { upc: 'p1', name: 'Desk', price: 100, weight: 20 },
  { upc: 'p2', name: 'Lamp', price: 30, weight: 2 },
];
const reviews = [
  { id: 'r1', body: 'Great desk', authorId: 'u1', upc: 'p1' },
  { id: 'r2', body: 'Dim lamp', authorId: 'u2', upc: 'p2' },
  { id: 'r3', body: 'Sturdy', authorId: 'u1', upc: 'p1' },
];
const accounts = [
  { id: 'a1', __typename: 'Admin', name: 'Root' },
  { id: 'a2', __typename: 'Member', level: 3 },
];
const boom = (what: string) => new GraphQLError(`${what} failed`, { extensions: { code: 'BOOM' } });

/** Subgraph requests received, per subgraph (to see what @provides saves). */
const received: Record<string, number> = {};
/** How long each subgraph holds a request (so that identical fetches of concurrent operations overlap). */
let holdMs = 0;

const subgraphs = {
  accounts: {
    typeDefs: `${LINK}
      type Query { me: User, users: [User!]!, node(id: ID!): Node, search(term: String!): [SearchResult!]!, accounts: [Account!]!, strictMe: User }
      interface Node { id: ID! }
      type User implements Node @key(fields: "id") { id: ID!, name: String! @shareable, email: String, strict: String! }
      type Org implements Node @key(fields: "id") { id: ID!, title: String! }
      union SearchResult = User | Org
      interface Account @key(fields: "id") { id: ID! }
      type Admin implements Account @key(fields: "id") { id: ID!, name: String! }
      type Member implements Account @key(fields: "id") { id: ID!, level: Int! }`,
    resolvers: {
      Query: {
        me: () => users[0],
        strictMe: () => users[0],
        users: () => users,
        node: (_: unknown, { id }: { id: string }) => (id.startsWith('u') ? { ...users.find((u) => u.id === id), __typename: 'User' } : { id, title: 'Acme', __typename: 'Org' }),
        search: () => [
          { ...users[1], __typename: 'User' },
          { id: 'o1', title: 'Acme', __typename: 'Org' },
        ],
        accounts: () => accounts,
      },
      Node: { __resolveType: (o: { __typename: string }) => o.__typename },
      SearchResult: { __resolveType: (o: { __typename: string }) => o.__typename },
      Account: { __resolveType: (o: { __typename: string }) => o.__typename },
      User: {
        __resolveReference: (ref: { id: string }) => users.find((u) => u.id === ref.id),
        strict: () => {
          throw boom('strict');
        },
      },
      Admin: { __resolveReference: (ref: { id: string }) => accounts.find((a) => a.id === ref.id) },
      Member: { __resolveReference: (ref: { id: string }) => accounts.find((a) => a.id === ref.id) },
    },
  },
  reviews: {
    typeDefs: `${LINK}
      type Query { topReviews: [Review!]! }
      type Review @key(fields: "id") { id: ID!, body: String!, author: User @provides(fields: "name"), product: Product!, flaky: String }
      type User @key(fields: "id") { id: ID!, name: String! @external, reviews: [Review!]! }
      type Product @key(fields: "upc") { upc: String!, reviews: [Review!]! }
      type Account @key(fields: "id") @interfaceObject { id: ID!, lastLogin: String! }`,
    resolvers: {
      Query: { topReviews: () => reviews },
      Review: {
        author: (r: { authorId: string }) => ({ id: r.authorId, name: users.find((u) => u.id === r.authorId)!.name }),
        product: (r: { upc: string }) => ({ upc: r.upc }),
        flaky: (r: { id: string }) => {
          if (r.id === 'r2') throw boom('flaky');
          return `ok ${r.id}`;
        },
      },
      User: { reviews: (u: { id: string }) => reviews.filter((r) => r.authorId === u.id) },
      Product: { reviews: (p: { upc: string }) => reviews.filter((r) => r.upc === p.upc) },
      Account: { __resolveReference: (ref: { id: string }) => ({ id: ref.id, lastLogin: `2026-01-0${ref.id.slice(1)}` }) },
    },
  },
  products: {
    typeDefs: `${LINK}
      type Query { products: [Product!]! }
      type Product @key(fields: "upc") { upc: String!, name: String!, price: Int!, weight: Int! }`,
    resolvers: {
      Query: { products: () => products },
      Product: { __resolveReference: (ref: { upc: string }) => products.find((p) => p.upc === ref.upc) },
    },
  },
  inventory: {
    typeDefs: `${LINK}
      type Product @key(fields: "upc") { upc: String!, price: Int! @external, weight: Int! @external, shippingEstimate: Int! @requires(fields: "price weight"), inStock: Boolean! }`,
    resolvers: {
      Product: {
        __resolveReference: (ref: { upc: string; price?: number; weight?: number }) => ref,
        // Free above 50, else half the weight: needs price and weight from the products subgraph.
        shippingEstimate: (p: { price: number; weight: number }) => (p.price > 50 ? 0 : p.weight / 2),
        inStock: (p: { upc: string }) => p.upc === 'p1',
      },
    },
  },
};

let stubs: StubSubgraphs;
let engine: GatewayRuntime;
let apollo: GatewayRuntime;

beforeAll(async () => {
  stubs = await startStubSubgraphs(subgraphs, async (name) => {
    received[name] = (received[name] ?? 0) + 1;
    if (holdMs > 0) await new Promise((resolve) => setTimeout(resolve, holdMs));
  });
  const config = readConfig(process.env, { NODE_ENV: 'test', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const options = { config, supergraphSdl: stubs.supergraphSdl, port: 0, host: '127.0.0.1' };
  engine = await startGateway(options);
  apollo = await startGateway({ ...options, executor: 'apollo' });
});

afterAll(async () => {
  await engine?.stop();
  await apollo?.stop();
  await stubs?.stop();
});

interface Result {
  data?: Record<string, any> | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
  extensions?: Record<string, unknown>;
}

async function post(url: string, query: string, variables?: Record<string, unknown>): Promise<Result> {
  const body = (await rawGraphQL(url, query, { variables })).body as Result;
  // Stack traces (test mode) differ by executor; everything else must not.
  for (const e of body.errors ?? []) delete e.extensions?.stacktrace;
  return body;
}

/** Runs the query on both gateways, asserts they agree, returns the engine's answer. */
async function both(query: string, variables?: Record<string, unknown>): Promise<Result> {
  const [mine, theirs] = await Promise.all([post(engine.url, query, variables), post(apollo.url, query, variables)]);
  expect(mine).toEqual(theirs);
  return mine;
}

test('entities: fields of one type from three subgraphs, lists of entities', async () => {
  const r = await both('{ topReviews { id body product { upc name price inStock } author { id email } } }');
  expect(r.errors).toBeUndefined();
  expect(r.data!.topReviews).toEqual([
    { id: 'r1', body: 'Great desk', product: { upc: 'p1', name: 'Desk', price: 100, inStock: true }, author: { id: 'u1', email: 'ada@x.io' } },
    { id: 'r2', body: 'Dim lamp', product: { upc: 'p2', name: 'Lamp', price: 30, inStock: false }, author: { id: 'u2', email: null } },
    { id: 'r3', body: 'Sturdy', product: { upc: 'p1', name: 'Desk', price: 100, inStock: true }, author: { id: 'u1', email: 'ada@x.io' } },
  ]);
});

test('entities nested both ways (user → reviews → product → reviews), with aliases and __typename', async () => {
  const r = await both('{ me { __typename who: name reviews { b: body product { upc reviews { id } } } } }');
  expect(r.data).toEqual({
    me: {
      __typename: 'User',
      who: 'Ada',
      reviews: [
        { b: 'Great desk', product: { upc: 'p1', reviews: [{ id: 'r1' }, { id: 'r3' }] } },
        { b: 'Sturdy', product: { upc: 'p1', reviews: [{ id: 'r1' }, { id: 'r3' }] } },
      ],
    },
  });
});

test('@requires: the planner fetches price and weight before shippingEstimate', async () => {
  const r = await both('{ products { upc shippingEstimate } }');
  expect(r.errors).toBeUndefined();
  expect(r.data).toEqual({
    products: [
      { upc: 'p1', shippingEstimate: 0 },
      { upc: 'p2', shippingEstimate: 1 },
    ],
  });
});

test("@provides: the author's name comes with the review, accounts is not asked", async () => {
  const before = received.accounts ?? 0;
  const r = await post(engine.url, '{ topReviews { author { name } } }');
  expect(r.data).toEqual({ topReviews: [{ author: { name: 'Ada' } }, { author: { name: 'Bob' } }, { author: { name: 'Ada' } }] });
  expect(received.accounts ?? 0).toBe(before);
  await both('{ topReviews { author { name } } }');
});

test('interfaces: fragments by runtime type, with entity fields from another subgraph', async () => {
  const q = 'query($id: ID!) { node(id: $id) { id __typename ... on User { name reviews { id } } ... on Org { title } } }';
  expect((await both(q, { id: 'u2' })).data).toEqual({ node: { id: 'u2', __typename: 'User', name: 'Bob', reviews: [{ id: 'r2' }] } });
  expect((await both(q, { id: 'o9' })).data).toEqual({ node: { id: 'o9', __typename: 'Org', title: 'Acme' } });
});

test('unions: members shaped by their own fragment', async () => {
  const r = await both('{ search(term: "x") { __typename ... on User { name reviews { body } } ... on Org { title } } }');
  expect(r.data).toEqual({
    search: [
      { __typename: 'User', name: 'Bob', reviews: [{ body: 'Dim lamp' }] },
      { __typename: 'Org', title: 'Acme' },
    ],
  });
});

test('@interfaceObject: a field added to every Account by a subgraph that does not know the implementations', async () => {
  const r = await both('{ accounts { __typename id lastLogin ... on Admin { name } ... on Member { level } } }');
  expect(r.errors).toBeUndefined();
  expect(r.data).toEqual({
    accounts: [
      { __typename: 'Admin', id: 'a1', lastLogin: '2026-01-01', name: 'Root' },
      { __typename: 'Member', id: 'a2', lastLogin: '2026-01-02', level: 3 },
    ],
  });
});

test('@skip / @include with variables and constants', async () => {
  const q = 'query($withMail: Boolean!, $noReviews: Boolean!) { me { id email @include(if: $withMail) reviews @skip(if: $noReviews) { id } name @skip(if: false) } }';
  expect((await both(q, { withMail: true, noReviews: true })).data).toEqual({ me: { id: 'u1', email: 'ada@x.io', name: 'Ada' } });
  expect((await both(q, { withMail: false, noReviews: false })).data).toEqual({ me: { id: 'u1', reviews: [{ id: 'r1' }, { id: 'r3' }], name: 'Ada' } });
});

test('a nullable field that fails: null in place, the error with its full path, code and subgraph', async () => {
  const r = await both('{ topReviews { id flaky } }');
  expect(r.data).toEqual({
    topReviews: [
      { id: 'r1', flaky: 'ok r1' },
      { id: 'r2', flaky: null },
      { id: 'r3', flaky: 'ok r3' },
    ],
  });
  expect(r.errors).toEqual([
    expect.objectContaining({ message: 'flaky failed', path: ['topReviews', 1, 'flaky'], extensions: expect.objectContaining({ code: 'BOOM', serviceName: 'reviews' }) }),
  ]);
});

test('a non-null field that fails in an entity fetch: null propagates to the nearest nullable parent', async () => {
  const r = await both('{ topReviews { id author { id strict } } }');
  expect(r.data).toEqual({
    topReviews: [
      { id: 'r1', author: null },
      { id: 'r2', author: null },
      { id: 'r3', author: null },
    ],
  });
  expect(r.errors!.map((e) => [e.message, e.path, e.extensions?.code, e.extensions?.serviceName])).toEqual([
    ['strict failed', ['topReviews', 0, 'author', 'strict'], 'BOOM', 'accounts'],
    ['strict failed', ['topReviews', 1, 'author', 'strict'], 'BOOM', 'accounts'],
    ['strict failed', ['topReviews', 2, 'author', 'strict'], 'BOOM', 'accounts'],
  ]);
});

test('a non-null field that fails at the root subgraph: the nullable root field becomes null', async () => {
  const r = await both('{ strictMe { id strict } users { id } }');
  expect(r.data).toEqual({ strictMe: null, users: [{ id: 'u1' }, { id: 'u2' }] });
  expect(r.errors?.[0]).toEqual(expect.objectContaining({ message: 'strict failed', path: ['strictMe', 'strict'] }));
});

test('identical operations at once share subgraph answers, and each still gets its whole, own answer', async () => {
  // The engine hands one parsed subgraph answer to every operation that shared the fetch and copies
  // what it merges into (copy on write): no operation may see another's merges, or lose its own.
  const cases: [string, Record<string, unknown>?][] = [
    ['{ topReviews { id body product { upc name price inStock } author { id email } } }'],
    ['{ me { __typename who: name reviews { b: body product { upc reviews { id } } } } }'],
    ['{ products { upc shippingEstimate } }'],
    ['query($id: ID!) { node(id: $id) { id __typename ... on User { name reviews { id } } ... on Org { title } } }', { id: 'u2' }],
    ['{ search(term: "x") { __typename ... on User { name reviews { body } } ... on Org { title } } }'],
    ['{ accounts { __typename id lastLogin ... on Admin { name } ... on Member { level } } }'],
    ['{ topReviews { id flaky author { id strict } } }'],
    // these two share their first two fetches (accounts, then reviews), then merge the same response
    // name into the same products from different subgraphs
    ['{ me { reviews { product { x: name shippingEstimate } } } }'],
    ['{ me { reviews { product { x: inStock } } } }'],
  ];
  const expected: Result[] = [];
  for (const [query, variables] of cases) expected.push(await both(query, variables));
  const total = () => Object.values(received).reduce((a, b) => a + b, 0);
  const alone = total();
  for (const [query, variables] of cases) await post(engine.url, query, variables);
  const perRound = total() - alone;

  holdMs = 40;
  try {
    const before = total();
    const copies = 8;
    // every case 8 times, all at once and interleaved, some different operations sharing root fetches
    const answers = await Promise.all(Array.from({ length: copies * cases.length }, (_, i) => post(engine.url, cases[i % cases.length]![0], cases[i % cases.length]![1])));
    answers.forEach((answer, i) => expect(answer).toEqual(expected[i % cases.length]));
    // the fetches were shared (else the subgraphs would have had copies × perRound requests)
    expect(total() - before).toBeLessThan(copies * perRound);
  } finally {
    holdMs = 0;
  }
  // and nothing of those operations stayed in the next one's answer
  for (let i = 0; i < cases.length; i++) expect(await post(engine.url, cases[i]![0], cases[i]![1])).toEqual(expected[i]);
});

test('a subgraph that cannot be reached: its fields are null, the error says which subgraph', async () => {
  await stubs.stop('inventory');
  const r = await both('{ products { upc inStock } }');
  expect(r.data).toBeNull(); // inStock is Boolean! in a [Product!]! list: null bubbles to the root
  expect(r.errors?.length).toBeGreaterThan(0);
});

test('response names that exist on Object.prototype (aliases constructor, toString, __proto__) are plain fields', async () => {
  const r = await both('{ me { constructor: name toString: id __proto__: email hasOwnProperty: name } }');
  expect(r.errors).toBeUndefined();
  expect(JSON.stringify(r.data)).toBe('{"me":{"constructor":"Ada","toString":"u1","__proto__":"ada@x.io","hasOwnProperty":"Ada"}}');
});
