/**
 * The security review's findings (issue 15), one row each in a table: a row is an attack played
 * through the public API (HTTP or WebSocket) or straight at a subgraph, and what must happen.
 * Every row failed on the code before its fix (docs/gateway-protection.md, threat model).
 * One stack, all five subgraphs, real Postgres/Kafka/Redis when their variables are set.
 * Request-shaped refusals live in hostile-input.test.ts; this file holds the stories.
 */
import { randomBytes } from 'node:crypto';
import { eventually, readConfig } from '@crm/kit';
import { startTestStack, type TestStack, type TestUser } from '@crm/stack';

interface Row {
  finding: string;
  name: string;
  run(): Promise<void>;
}

let stack: TestStack;
let admin: TestUser;

beforeAll(async () => {
  stack = await startTestStack({
    env: {
      ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
      TRUST_PROXY_HOPS: '1',
    },
  });
  admin = await stack.admin();
});
afterAll(async () => {
  await stack?.stop();
});

interface Raw {
  status: number;
  headers: Headers;
  body: { data?: any; errors?: { message: string; extensions?: Record<string, any> }[] };
}

async function call(query: string, options: { variables?: Record<string, unknown>; token?: string; ip?: string; url?: string } = {}): Promise<Raw> {
  const res = await fetch(options.url ?? stack.gatewayUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.ip ? { 'x-forwarded-for': options.ip } : {}),
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) };
}
const code = (r: Raw) => r.body.errors?.[0]?.extensions?.code;
const ip = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]! % 250 + 1}`;

const gqlOk = async (u: TestUser, query: string, variables?: Record<string, unknown>) => {
  const r = await u.gql(query, variables);
  if (r.errors) throw new Error(`${query}: ${JSON.stringify(r.errors)}`);
  return r.data;
};
const approve = (u: TestUser) => gqlOk(admin, 'mutation($id: ID!) { approveUser(id: $id) { id approved } }', { id: u.id });
const REGISTER = 'mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }';
const registration = () => ({ email: `reg-${randomBytes(4).toString('hex')}@test.local`, password: 'password-1234', name: 'Newcomer' });

/** A second, auth-only stack with other settings (registration policies). */
async function withAuthStack(env: Record<string, string>, run: (s: TestStack) => Promise<void>): Promise<void> {
  const s = await startTestStack({ only: ['auth'], env });
  try {
    await run(s);
  } finally {
    await s.stop();
  }
}

const rows: Row[] = [
  {
    finding: 'H1',
    name: 'login brute force with the email in a variable default value is still counted and blocked',
    async run() {
      const victim = await stack.user('SALES');
      const from = ip();
      const guess = 'mutation($e: String = "EMAIL", $p: String!) { login(email: $e, password: $p) { accessToken } }'.replace('EMAIL', victim.email);
      const codes: unknown[] = [];
      for (let i = 0; i < stack.config.LOGIN_FAILS_PER_ACCOUNT_IP + 2; i++) codes.push(code(await call(guess, { variables: { p: `wrong-guess-${i}` }, ip: from })));
      expect(codes.slice(0, stack.config.LOGIN_FAILS_PER_ACCOUNT_IP)).toEqual(Array(stack.config.LOGIN_FAILS_PER_ACCOUNT_IP).fill('UNAUTHENTICATED'));
      expect(codes.slice(stack.config.LOGIN_FAILS_PER_ACCOUNT_IP)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
      // …and the block holds for the usual inline form too (same counter).
      const inline = await call(`mutation { login(email: "${victim.email}", password: "password-1234") { accessToken } }`, { ip: from });
      expect(inline.status).toBe(429);
    },
  },
  {
    finding: 'H2',
    name: 'self-registered accounts never receive a departing rep\'s customers; they stay unassigned and managers are notified',
    async run() {
      const manager = await stack.user('MANAGER');
      const leaving = await stack.user('SALES', 'Rep Leaving');
      const customer = (await gqlOk(leaving, 'mutation { createCustomer(input: { name: "Precious Client", email: "vip@client.example" }) { id } }')).createCustomer;
      // The attacker registers fresh accounts before the rep leaves (and lets the directory learn them).
      const squatters = [await stack.user('SALES', 'Squatter A'), await stack.user('SALES', 'Squatter B')];
      for (const q of squatters) await gqlOk(q, 'mutation { createCustomer(input: { name: "Own" }) { id } }');
      await gqlOk(admin, 'mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: leaving.id });
      const note = await eventually(async () => {
        const r = await gqlOk(manager, '{ myNotifications(first: 20) { edges { node { type title entityId } } } }');
        return r.myNotifications.edges.map((e: any) => e.node).find((n: any) => n.entityId === customer.id);
      }, { timeoutMs: 30_000 });
      expect(note).toMatchObject({ type: 'SYSTEM', title: expect.stringMatching(/unassigned/) });
      const seen = await gqlOk(admin, 'query($id: ID!) { customer(id: $id) { assignedRep { id } } }', { id: customer.id });
      expect(seen.customer.assignedRep).toBeNull();
      for (const q of squatters) expect((await q.gql('query($id: ID!) { customer(id: $id) { id name } }', { id: customer.id })).data?.customer ?? null).toBeNull();
    },
  },
  {
    finding: 'H2',
    name: 'an approved rep does receive them (reassignment still works)',
    async run() {
      const leaving = await stack.user('SALES', 'Rep Leaving Too');
      const heir = await stack.user('SALES', 'Rep Approved');
      await approve(heir);
      const customer = (await gqlOk(leaving, 'mutation { createCustomer(input: { name: "Handed Over" }) { id } }')).createCustomer;
      await gqlOk(admin, 'mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: leaving.id });
      await eventually(async () => (await gqlOk(admin, 'query($id: ID!) { customer(id: $id) { assignedRep { id } } }', { id: customer.id })).customer.assignedRep?.id === heir.id, { timeoutMs: 30_000 });
      // leave no approved SALES rep behind for other rows
      await gqlOk(admin, 'mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: heir.id });
    },
  },
  {
    finding: 'H2',
    name: 'REGISTRATION_POLICY=approval (the production default): a registration cannot sign in until an ADMIN approves it',
    async run() {
      expect(readConfig({ NODE_ENV: 'production', JWT_SECRET: 'j'.repeat(40) + randomBytes(8).toString('hex'), INTERNAL_SECRET: 'i'.repeat(40) + randomBytes(8).toString('hex') }).registrationPolicy).toBe('approval');
      await withAuthStack({ REGISTRATION_POLICY: 'approval' }, async (s) => {
        const input = registration();
        const r = await s.gql(REGISTER, { i: input });
        expect(r.data?.register ?? null).toBeNull();
        expect(r.errors?.[0]?.extensions?.code).toBe('PENDING_APPROVAL');
        // the same answer for an email that already has an account (no account discovery)
        const again = await s.gql(REGISTER, { i: { ...input, name: 'Twin' } });
        expect([again.errors?.[0]?.extensions?.code, again.errors?.[0]?.message]).toEqual(['PENDING_APPROVAL', r.errors?.[0]?.message]);
        const login = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken user { id approved } } }';
        expect((await s.gql(login, { e: input.email, p: input.password })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        const a = await s.admin();
        const pending = await a.gql('query { users(first: 100) { edges { node { id email active approved } } } }');
        const row = pending.data.users.edges.map((e: any) => e.node).find((u: any) => u.email === input.email);
        expect(row).toMatchObject({ active: false, approved: false });
        const manager = await s.user('MANAGER');
        expect((await manager.gql('mutation($id: ID!) { approveUser(id: $id) { id } }', { id: row.id })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        expect((await a.gql('mutation($id: ID!) { approveUser(id: $id) { active approved } }', { id: row.id })).data.approveUser).toEqual({ active: true, approved: true });
        expect((await s.gql(login, { e: input.email, p: input.password })).data.login.user).toEqual({ id: row.id, approved: true });
      });
    },
  },
  {
    finding: 'H2',
    name: 'REGISTRATION_POLICY=closed: register is refused; an ADMIN creates accounts',
    async run() {
      await withAuthStack({ REGISTRATION_POLICY: 'closed' }, async (s) => {
        const r = await s.gql(REGISTER, { i: registration() });
        expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        expect(r.errors?.[0]?.message).toMatch(/REGISTRATION_POLICY=closed/);
        const u = await s.user('SALES');
        expect((await u.gql('{ me { role approved active } }')).data.me).toEqual({ role: 'SALES', approved: true, active: true });
      });
    },
  },
  {
    finding: 'H3',
    name: 'production refuses the old compose fallback secrets, repetitive ones and JWT_SECRET = INTERNAL_SECRET (compose-file.test.ts: no defaults, no public infra ports)',
    async run() {
      const good = { NODE_ENV: 'production', JWT_SECRET: randomBytes(32).toString('hex'), INTERNAL_SECRET: randomBytes(32).toString('hex') };
      expect(readConfig(good).production).toBe(true);
      for (const bad of [
        { JWT_SECRET: 'change-me-jwt-secret-0123456789abcdefghij' },
        { INTERNAL_SECRET: 'change-me-internal-secret-0123456789abcdef' },
        { JWT_SECRET: 'z'.repeat(64) },
        { JWT_SECRET: good.INTERNAL_SECRET },
        { ADMIN_PASSWORD: 'change-me-admin-password' },
      ]) {
        expect(() => readConfig({ ...good, ...bad })).toThrow(/production configuration/);
      }
    },
  },
];

test.each(rows.map((r) => [r.finding, r.name, r] as const))('%s: %s', async (_f, _n, row) => {
  await row.run();
});
