/**
 * The static cost estimate (gateway/src/cost.ts) and how it maps to rate-limit points — the
 * formula documented in docs/gateway-protection.md, on a small schema with nested connections.
 */
import { buildSchema, parse } from 'graphql';
import { estimateCost, pointsFor } from '../src/cost';

const schema = buildSchema(`
  type PageInfo { hasNextPage: Boolean! endCursor: String }
  type User { id: ID! name: String! manager: User tags: [Tag!]! customers(first: Int, after: String): CustomerConnection! }
  type Tag { id: ID! label: String! }
  type Customer { id: ID! owner: User! }
  type CustomerEdge { node: Customer! cursor: String! }
  type CustomerConnection { edges: [CustomerEdge!]! nodes: [Customer!]! pageInfo: PageInfo! totalCount: Int! }
  type UserEdge { node: User! cursor: String! }
  type UserConnection { edges: [UserEdge!]! pageInfo: PageInfo! totalCount: Int! }
  type Query { me: User users(first: Int, after: String): UserConnection! version: String! }
`);

const cost = (query: string, variables: Record<string, unknown> = {}) => {
  const doc = parse(query);
  const op = doc.definitions.find((d) => d.kind === 'OperationDefinition')!;
  return estimateCost(schema, doc, op, variables);
};

test.each([
  ['scalars only', '{ version }', 0],
  ['one object', '{ me { id name } }', 1],
  ['nested objects', '{ me { manager { manager { id } } } }', 3],
  ['plain list: default 20', '{ me { tags { id } } }', 1 + 20],
  ['connection, default first', '{ users { totalCount edges { node { id } } } }', 1 + 20 * 2],
  ['connection, first: 5', '{ users(first: 5) { edges { node { id } } pageInfo { hasNextPage } } }', 1 + 5 * 2 + 1],
  ['nested connections multiply', '{ users(first: 10) { edges { node { customers(first: 3) { nodes { id } } } } } }', 1 + 10 * (1 + 1 + 1 + 3 * 1)],
  ['first from a variable', 'query($n: Int) { users(first: $n) { edges { node { id } } } }', 1 + 7 * 2],
  ['fragments count like inline selections', '{ me { ...F } } fragment F on User { manager { id } }', 2],
  ['circular fragments are cut', '{ me { ...A } } fragment A on User { manager { ...B } } fragment B on User { manager { ...A } }', 3],
])('%s', (_name, query, expected) => {
  expect(cost(query, { n: 7 })).toBe(expected);
});

test('points = max(1, ceil(cost / costPerPoint))', () => {
  expect(pointsFor(0, 50)).toBe(1);
  expect(pointsFor(41, 50)).toBe(1);
  expect(pointsFor(201, 50)).toBe(5);
  expect(pointsFor(5000, 50)).toBe(100);
});

test('a variable default is priced like the value sent (coerced variables)', () => {
  const q = 'query($n: Int = 100) { users(first: $n) { edges { node { customers(first: $n) { nodes { id } } } } } }';
  const asSent = cost(q.replace('($n: Int = 100)', '($n: Int)'), { n: 100 });
  expect(cost(q, {})).toBe(asSent);
  expect(asSent).toBe(1 + 100 * (1 + 1 + 1 + 100));
  // a value sent wins over the default
  expect(cost(q, { n: 2 })).toBe(1 + 2 * (1 + 1 + 1 + 2));
});

test('absent or null: the default page; unreadable: the maximum page', () => {
  expect(cost('query($n: Int) { users(first: $n) { edges { node { id } } } }', {})).toBe(1 + 20 * 2);
  expect(cost('{ users(first: null) { edges { node { id } } } }', {})).toBe(1 + 20 * 2);
  expect(cost('query($n: Int) { users(first: $n) { edges { node { id } } } }', { n: 'lots' })).toBe(1 + 100 * 2);
});
