/**
 * The foundation story: a user registers, logs in, reads `me`, rotates and revokes refresh
 * tokens through the gateway; bad tokens and unsigned subgraph calls are refused.
 */
import jwt from 'jsonwebtoken';
import { signTestAccessToken } from '@crm/testing';
import { startTestStack, type TestStack } from '@crm/platform';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ only: ['auth'] });
});
afterAll(async () => {
  await stack?.stop();
});

const ME = '{ me { id email name role active } }';
const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

test('register → login → me', async () => {
  const reg = await stack.gql(
    `mutation { register(input: { email: "Grace@Example.com", password: "correct-horse-1", name: "Grace" }) { accessToken user { id email role active } } }`,
  );
  expect(reg.errors).toBeUndefined();
  expect(reg.data.register.user).toMatchObject({ email: 'grace@example.com', role: 'SALES', active: true });

  const login = await stack.gql(`mutation { login(email: "GRACE@example.com", password: "correct-horse-1") { accessToken refreshToken expiresAt user { id } } }`);
  expect(login.errors).toBeUndefined();
  const me = await stack.gql(ME, {}, login.data.login.accessToken);
  expect(me.data.me).toMatchObject({ id: reg.data.register.user.id, name: 'Grace', role: 'SALES' });
});

test('emails are unique case-insensitively; bad input names the field', async () => {
  await stack.user();
  const dup = await stack.gql(`mutation { register(input: { email: "dup@x.io", password: "0123456789", name: "A" }) { user { id } } }`);
  expect(dup.errors).toBeUndefined();
  const again = await stack.gql(`mutation { register(input: { email: "DUP@x.io", password: "0123456789", name: "B" }) { user { id } } }`);
  expect(code(again)).toBe('CONFLICT');
  const short = await stack.gql(`mutation { register(input: { email: "s@x.io", password: "short", name: "S" }) { user { id } } }`);
  expect(code(short)).toBe('BAD_USER_INPUT');
  expect(short.errors?.[0]?.extensions?.field).toBe('password');
});

test('wrong password and unknown email give the same error', async () => {
  const u = await stack.user();
  const wrong = await stack.gql(`mutation($e: String!) { login(email: $e, password: "wrong-password") { accessToken } }`, { e: u.email });
  const unknown = await stack.gql(`mutation { login(email: "nobody@x.io", password: "wrong-password") { accessToken } }`);
  expect(code(wrong)).toBe('UNAUTHENTICATED');
  expect(wrong.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
});

test('refresh tokens rotate: a used one no longer works, and its reuse revokes the family', async () => {
  const u = await stack.user();
  const REFRESH = `mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken user { id } } }`;
  const first = await stack.gql(REFRESH, { t: u.refreshToken });
  expect(first.errors).toBeUndefined();
  expect(first.data.refreshToken.user.id).toBe(u.id);
  const me = await stack.gql(ME, {}, first.data.refreshToken.accessToken);
  expect(me.data.me.id).toBe(u.id);

  const reused = await stack.gql(REFRESH, { t: u.refreshToken });
  expect(code(reused)).toBe('UNAUTHENTICATED');
  // Reuse of a rotated token is treated as theft: the newer token of the family is revoked too.
  const newer = await stack.gql(REFRESH, { t: first.data.refreshToken.refreshToken });
  expect(code(newer)).toBe('UNAUTHENTICATED');
});

test('logout revokes the refresh tokens', async () => {
  const u = await stack.user();
  const out = await u.gql('mutation { logout }');
  expect(out.data.logout).toBe(true);
  const r = await stack.gql(`mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }`, { t: u.refreshToken });
  expect(code(r)).toBe('UNAUTHENTICATED');
});

test('forged, expired, alg:none and wrong-audience tokens get UNAUTHENTICATED', async () => {
  const u = await stack.user();
  const { JWT_ISSUER, JWT_AUDIENCE } = stack.config;
  const claims = { role: 'ADMIN', email: u.email };
  const forged = jwt.sign(claims, 'another-secret-that-is-long-enough-0123', { subject: u.id, issuer: JWT_ISSUER, audience: JWT_AUDIENCE, expiresIn: 60 });
  const expired = signTestAccessToken(stack.config, { ...claims, exp: Math.floor(Date.now() / 1000) - 10 }, { subject: u.id });
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, sub: u.id, iss: JWT_ISSUER, aud: JWT_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`;
  const wrongAudience = signTestAccessToken(stack.config, claims, { subject: u.id, audience: 'someone-else', expiresIn: 60 });
  for (const token of [forged, expired, none, wrongAudience, 'garbage']) {
    const r = await stack.gql(ME, {}, token);
    expect(r.status).toBe(401);
    expect(code(r)).toBe('UNAUTHENTICATED');
    expect(r.data?.me).toBeUndefined();
  }
});

test('a direct call to a subgraph without the gateway signature is refused', async () => {
  const u = await stack.user();
  const res = await fetch(stack.subgraphs.auth!.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${u.token}`,
      'x-crm-identity': Buffer.from(JSON.stringify({ u: { userId: u.id, role: 'ADMIN', email: u.email }, iat: Math.floor(Date.now() / 1000) })).toString('base64url'),
      'x-crm-signature': 'forged',
    },
    body: JSON.stringify({ query: '{ users { totalCount } }' }),
  });
  expect(res.status).toBe(401);
  const body = (await res.json()) as { errors: { extensions: { code: string } }[] };
  expect(body.errors[0]!.extensions.code).toBe('UNAUTHENTICATED');
});

test('roles: users is for ADMIN/MANAGER; role changes are ADMIN-only and audited', async () => {
  const sales = await stack.user('SALES');
  const manager = await stack.user('MANAGER');
  const compliance = await stack.user('COMPLIANCE');
  expect(code(await sales.gql('{ users { totalCount } }'))).toBe('FORBIDDEN');
  const list = await manager.gql('{ users(role: MANAGER, first: 5) { totalCount edges { node { id role } } } }');
  expect(list.data.users.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(manager.id);
  const selfPromote = await sales.gql(`mutation($id: ID!) { updateUser(id: $id, input: { role: ADMIN }) { role } }`, { id: sales.id });
  expect(code(selfPromote)).toBe('FORBIDDEN');
  const rename = await sales.gql(`mutation($id: ID!) { updateUser(id: $id, input: { name: "Renamed" }) { name } }`, { id: sales.id });
  expect(rename.data.updateUser.name).toBe('Renamed');
  const audit = await compliance.gql(`query($a: ID!) { auditLog(actorId: $a, first: 50) { edges { node { action entityId actor { id } } } } }`, { a: (await stack.admin()).id });
  const actions = audit.data.auditLog.edges.map((e: { node: { action: string } }) => e.node.action);
  expect(actions).toContain('user.role_changed');
  expect(code(await sales.gql('{ auditLog { totalCount } }'))).toBe('FORBIDDEN');
});

test('a deleted user can no longer log in or refresh', async () => {
  const admin = await stack.admin();
  const u = await stack.user();
  const del = await admin.gql(`mutation($id: ID!) { deleteUser(id: $id) { id } }`, { id: u.id });
  expect(del.errors).toBeUndefined();
  expect(del.data.deleteUser.id).toBeTruthy();
  const login = await stack.gql(`mutation($e: String!) { login(email: $e, password: "password-1234") { accessToken } }`, { e: u.email });
  expect(code(login)).toBe('UNAUTHENTICATED');
  const refresh = await stack.gql(`mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }`, { t: u.refreshToken });
  expect(code(refresh)).toBe('UNAUTHENTICATED');
  const user = await admin.gql(`query($id: ID!) { user(id: $id) { active } }`, { id: u.id });
  expect(user.data.user.active).toBe(false);
  const audit = await admin.gql(`{ auditLog(entityType: "User", first: 100) { edges { node { action entityId } } } }`);
  expect(audit.data.auditLog.edges.some((e: { node: { action: string; entityId: string } }) => e.node.action === 'user.deleted' && e.node.entityId === u.id)).toBe(true);
});

// Last in this file: it changes the bootstrap ADMIN's role (and restores it).
test('the last active ADMIN cannot lose the role: not by stepping down, not by two ADMINs stepping down at once', async () => {
  const DEMOTE = 'mutation($id: ID!) { updateUser(id: $id, input: { role: SALES }) { role } }';
  const admins = async () => (await stack.sql<{ n: number }>('auth', "SELECT count(*)::int AS n FROM users WHERE role = 'ADMIN' AND active"))[0]!.n;
  const admin = await stack.admin();
  // with another ADMIN, an ADMIN may step down
  const other = await stack.user('ADMIN');
  expect((await other.gql(DEMOTE, { id: other.id })).data?.updateUser.role).toBe('SALES');
  expect(await admins()).toBe(1);
  // the last one may not
  const last = await admin.gql(DEMOTE, { id: admin.id });
  expect(last.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  expect(last.errors?.[0]?.message).toMatch(/last ADMIN/);
  expect(await admins()).toBe(1);
  // two ADMINs stepping down at the same moment: one does, the other is refused
  const second = await stack.user('ADMIN');
  const both = await Promise.all([admin.gql(DEMOTE, { id: admin.id }), second.gql(DEMOTE, { id: second.id })]);
  expect(both.map((r) => r.errors?.[0]?.extensions?.code ?? 'OK').sort()).toEqual(['CONFLICT', 'OK']);
  expect(await admins()).toBe(1);
  // the one left restores the other (the bootstrap ADMIN the other tests log in as)
  const stayed = both[0].errors ? admin : second;
  if (stayed !== admin) expect((await stayed.gql('mutation($id: ID!) { updateUser(id: $id, input: { role: ADMIN }) { role } }', { id: admin.id })).errors).toBeUndefined();
});
