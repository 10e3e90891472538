/** The User entity through `_entities`, as the gateway calls it: signed, batched, authenticated only. */
import { randomUUID } from 'node:crypto';
import { startTestSubgraph, type TestSubgraph } from '@crm/testing';
import { type Identity, type Role } from '@crm/runtime';
import { authSubgraph } from '../src';

const ADMIN = { email: 'admin@test.local', password: 'admin-Pw-test-7q4k2z' };

let auth: TestSubgraph;
let admin: Identity;
beforeAll(async () => {
  auth = await startTestSubgraph(authSubgraph, { env: { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password } });
  const login = await auth.call(null, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }`, { e: ADMIN.email, p: ADMIN.password });
  admin = { userId: login.data.login.user.id, role: 'ADMIN', email: ADMIN.email };
});
afterAll(async () => {
  await auth?.stop();
});

const errorCode = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name email role active } } }`;

/** An account in the auth subgraph, made by the ADMIN; its identity as the gateway would forward it. */
async function user(role: Role = 'SALES', name = `${role} user`): Promise<Identity & { id: string }> {
  const email = `${role.toLowerCase()}-${randomUUID().slice(0, 8)}@test.local`;
  const r = await auth.call(admin, `mutation($input: CreateUserInput!) { createUser(input: $input) { id } }`, { input: { email, password: 'password-1234', name, role } });
  if (!r.data?.createUser) throw new Error(`createUser failed: ${JSON.stringify(r.errors)}`);
  return { id: r.data.createUser.id, userId: r.data.createUser.id, role, email };
}

test('_entities resolves User references in order, null for unknown ids', async () => {
  const [a, b] = [await user('SALES', 'Ada'), await user('MANAGER', 'Bob')];
  const missing = randomUUID();
  // as the MANAGER: a SALES caller sees other users' id and name only (hostile-security.test.ts, L10)
  const r = await auth.call(b, ENTITIES, {
    r: [
      { __typename: 'User', id: b.id },
      { __typename: 'User', id: missing },
      { __typename: 'User', id: a.id },
    ],
  });
  expect(r.errors).toBeUndefined();
  expect(r.data._entities).toEqual([
    { id: b.id, name: 'Bob', email: b.email, role: 'MANAGER', active: true },
    null,
    { id: a.id, name: 'Ada', email: a.email, role: 'SALES', active: true },
  ]);
});

test('_entities needs an authenticated identity and the gateway signature', async () => {
  const a = await user();
  const anonymous = await auth.call(null, ENTITIES, { r: [{ __typename: 'User', id: a.id }] });
  expect(errorCode(anonymous)).toBe('UNAUTHENTICATED');
  const unsigned = await fetch(auth.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: ENTITIES, variables: { r: [{ __typename: 'User', id: a.id }] } }),
  });
  expect(unsigned.status).toBe(401);
});

test('User references of many users cost one statement', async () => {
  const users = await Promise.all([1, 2, 3, 4, 5, 6].map(() => user()));
  const before = auth.db.statementCount();
  const r = await auth.call(users[0]!, ENTITIES, { r: users.map((u) => ({ __typename: 'User', id: u.id })) });
  expect(r.data._entities).toHaveLength(6);
  expect(auth.db.statementCount() - before).toBe(1);
});
