/** The User entity through `_entities`, as the gateway calls it: signed, batched, authenticated only. */
import { randomUUID } from 'node:crypto';
import { startTestStack, errorCode, identityOf, type TestStack } from '@crm/platform';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ only: ['auth'] });
});
afterAll(async () => {
  await stack?.stop();
});

const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name email role active } } }`;

test('_entities resolves User references in order, null for unknown ids', async () => {
  const [a, b] = [await stack.user('SALES', 'Ada'), await stack.user('MANAGER', 'Bob')];
  const missing = randomUUID();
  // as the MANAGER: a SALES caller sees other users' id and name only (hostile-security.test.ts, L10)
  const r = await stack.signed('auth', identityOf(b), ENTITIES, {
    r: [{ __typename: 'User', id: b.id }, { __typename: 'User', id: missing }, { __typename: 'User', id: a.id }],
  });
  expect(r.errors).toBeUndefined();
  expect(r.data._entities).toEqual([
    { id: b.id, name: 'Bob', email: b.email, role: 'MANAGER', active: true },
    null,
    { id: a.id, name: 'Ada', email: a.email, role: 'SALES', active: true },
  ]);
});

test('_entities needs an authenticated identity and the gateway signature', async () => {
  const a = await stack.user();
  const anonymous = await stack.signed('auth', null, ENTITIES, { r: [{ __typename: 'User', id: a.id }] });
  expect(errorCode(anonymous)).toBe('UNAUTHENTICATED');
  const unsigned = await fetch(stack.subgraphs.auth!.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: ENTITIES, variables: { r: [{ __typename: 'User', id: a.id }] } }),
  });
  expect(unsigned.status).toBe(401);
});

test('User references of many users cost one statement', async () => {
  const users = await Promise.all([1, 2, 3, 4, 5, 6].map(() => stack.user()));
  const db = stack.subgraphs.auth!.db;
  const before = db.statementCount();
  const r = await stack.signed('auth', identityOf(users[0]!), ENTITIES, { r: users.map((u) => ({ __typename: 'User', id: u.id })) });
  expect(r.data._entities).toHaveLength(6);
  expect(db.statementCount() - before).toBe(1);
});
