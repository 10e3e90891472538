/**
 * The one helper every story test starts from: a whole stack on free ports with throwaway
 * databases, Kafka topics and Redis keys. Against real services when POSTGRES_URL,
 * KAFKA_BROKERS and REDIS_URL are set (CI); embedded otherwise. Plus a tiny GraphQL client.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createLogger } from '@crm/telemetry';
import { gatewaySigningKey, signIdentity, type Identity, type Role } from '@crm/runtime';
import { readConfig, type PlatformConfig } from '@crm/config';
import { testSettings, type GraphQLResult } from '@crm/testing';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './embedded-database';
import { startProcessStack, type ProcessStack } from './processes';
import { startStack, type Stack, type StackOptions } from './start-stack';

export const ADMIN = { email: 'admin@test.local', password: 'admin-Pw-test-7q4k2z' };

export type { GraphQLResult };

export interface TestUser {
  id: string;
  email: string;
  role: Role;
  token: string;
  refreshToken: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
}

/** GraphQL through a stack's gateway, and users to make requests as. */
export interface TestClient {
  gql<T = any>(query: string, variables?: Record<string, unknown>, token?: string): Promise<GraphQLResult<T>>;
  admin(): Promise<TestUser>;
  /** Registers a new user and, for roles other than SALES, has the admin grant the role. */
  user(role?: Role, name?: string): Promise<TestUser>;
}

export interface TestStack extends Stack, TestClient {
  /** A request straight to one subgraph, signed as the gateway would sign `identity` (IDOR and `_entities` tests). */
  signed<T = any>(subgraph: string, identity: Identity | null, query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
  /** Raw SQL on one subgraph's own database, for assertions. */
  sql<T = Record<string, unknown>>(subgraph: string, query: string, params?: unknown[]): Promise<T[]>;
}

export interface TestStackOptions extends Omit<StackOptions, 'config'> {
  env?: Record<string, string>;
}

export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  const release = await useTestDatabase();
  try {
    const id = randomBytes(4).toString('hex');
    const config = testConfig(id, options.env);
    const stack = await startStack({ ...options, config, ports: 'random' });
    const decorated = decorate(stack, config);
    const stop = decorated.stop;
    return { ...decorated, stop: () => stop().finally(release) };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Without POSTGRES_URL outside jest (whose globalSetup starts one embedded Postgres for the run):
 * scripts such as the benchmarks get one throwaway embedded Postgres for this process, shared by
 * its stacks and stopped with the last of them.
 */
let shared: { db: Promise<EmbeddedDatabase>; users: number } | undefined;
async function useTestDatabase(): Promise<() => Promise<void>> {
  if (process.env.POSTGRES_URL && !shared) return async () => undefined;
  shared ??= { db: startEmbeddedDatabase('memory', createLogger('test-postgres', 'warn')), users: 0 };
  const mine = shared;
  mine.users += 1;
  try {
    await mine.db;
  } catch (err) {
    if (shared === mine) shared = undefined;
    throw err;
  }
  return async () => {
    mine.users -= 1;
    if (mine.users > 0) return;
    if (shared === mine) shared = undefined;
    await (await mine.db).stop();
  };
}

export function testConfig(id: string, env: Record<string, string> = {}): PlatformConfig {
  return readConfig(process.env, testOverrides(id, env));
}

/** The settings a test stack puts on top of the environment: throwaway names, quiet logs, embedded unless configured. */
export function testOverrides(id: string, env: Record<string, string> = {}): Record<string, string> {
  return testSettings(id, { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, ...env });
}

/** The platform in processes of its own (processes.ts) with throwaway databases, plus the test client. */
export async function startProcessTestStack(options: { env?: Record<string, string>; execArgv?: string[] } = {}): Promise<ProcessStack & TestClient> {
  const release = await useTestDatabase();
  const id = randomBytes(4).toString('hex');
  const stack = await startProcessStack({ overrides: testOverrides(id, options.env), ports: 'random', execArgv: options.execArgv }).catch(async (err: unknown) => {
    await release();
    throw err;
  });
  return {
    ...stack,
    ...testClient(stack.gatewayUrl, stack.config),
    // the current pids (a restarted service has a new one), not a copy from now
    get pids() {
      return stack.pids;
    },
    async stop() {
      try {
        await stack.stop();
        await dropTestDatabases(stack.config);
      } finally {
        await release();
      }
    },
  };
}

export function gqlRequest<T = any>(url: string, query: string, variables?: Record<string, unknown>, token?: string): Promise<GraphQLResult<T>> {
  return postJson<T>(url, { query, variables }, token ? { authorization: `Bearer ${token}` } : {});
}

/**
 * `data[field]` of a result that must succeed as it is (a user-facing action: no retry), or an
 * error naming the field and the result's errors.
 */
export function dataOf<T = any>(r: { data?: any; errors?: unknown }, field: string): T {
  const value = r.data?.[field];
  if (value === undefined || value === null) throw new Error(`${field} failed: ${JSON.stringify(r.errors)}`);
  return value as T;
}

/** The first error's extensions.code of a result. */
export const errorCode = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
/** The identity the gateway would forward for a test user. */
export const identityOf = (u: Pick<TestUser, 'id' | 'role' | 'email'>): Identity => ({ userId: u.id, role: u.role, email: u.email });

function postJson<T>(url: string, body: unknown, headers: Record<string, string>): Promise<GraphQLResult<T>> {
  return postRaw<T>(url, JSON.stringify(body), headers);
}

async function postRaw<T>(url: string, body: string, headers: Record<string, string>): Promise<GraphQLResult<T>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let parsed: { data?: T; errors?: GraphQLResult['errors'] } = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { errors: [{ message: text }] };
  }
  return { status: res.status, headers: res.headers, ...parsed };
}

const LOGIN = `mutation($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken refreshToken user { id role } } }`;
const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken user { id role } } }`;

export function testClient(url: string, config: PlatformConfig): TestClient {
  const gql = <T = any>(query: string, variables?: Record<string, unknown>, token?: string) => gqlRequest<T>(url, query, variables, token);
  const asUser = (email: string, role: Role, payload: { accessToken: string; refreshToken: string; user: { id: string } }): TestUser => ({
    id: payload.user.id,
    email,
    role,
    token: payload.accessToken,
    refreshToken: payload.refreshToken,
    gql: (q, v) => gql(q, v, payload.accessToken),
  });
  const login = async (email: string, password: string, role: Role) => {
    const r = await gql(LOGIN, { email, password });
    if (!r.data?.login) throw new Error(`login failed: ${JSON.stringify(r.errors)}`);
    return asUser(email, role, r.data.login);
  };
  let adminUser: Promise<TestUser> | undefined;
  let counter = 0;
  const admin = () => (adminUser ??= login(ADMIN.email, ADMIN.password, 'ADMIN'));
  return {
    gql,
    admin,
    async user(role: Role = 'SALES', name?: string) {
      counter += 1;
      const email = `${role.toLowerCase()}${counter}-${randomBytes(3).toString('hex')}@test.local`;
      const password = 'password-1234';
      const input = { email, password, name: name ?? `${role} ${counter}` };
      // REGISTRATION_POLICY=approval/closed: the ADMIN creates the account (approved, active at once).
      if (config.registrationPolicy !== 'open') {
        const made = await (await admin()).gql(`mutation($input: CreateUserInput!) { createUser(input: $input) { id } }`, { input: { ...input, role } });
        if (made.errors) throw new Error(`createUser failed: ${JSON.stringify(made.errors)}`);
        return login(email, password, role);
      }
      const r = await gql(REGISTER, { input });
      if (!r.data?.register) throw new Error(`register failed: ${JSON.stringify(r.errors)}`);
      if (role === 'SALES') return asUser(email, role, r.data.register);
      const up = await (await admin()).gql(`mutation($id: ID!, $role: Role!) { updateUser(id: $id, input: { role: $role }) { id role } }`, { id: r.data.register.user.id, role });
      if (up.errors) throw new Error(`role change failed: ${JSON.stringify(up.errors)}`);
      return login(email, password, role);
    },
  };
}

function decorate(stack: Stack, config: PlatformConfig): TestStack {
  const stop = stack.stop.bind(stack);
  return {
    ...stack,
    ...testClient(stack.gatewayUrl, config),
    signed: (subgraph, identity, query, variables) => {
      const body = JSON.stringify({ query, variables });
      return postRaw(stack.subgraphs[subgraph]!.url, body, signIdentity(identity, gatewaySigningKey(config), { subgraph, method: 'POST', body }));
    },
    sql: async (subgraph, query, params = []) => (await stack.subgraphs[subgraph]!.fork().getConnection().execute(query, params)) as never,
    async stop() {
      await stop();
      await dropTestDatabases(config);
    },
  };
}

/** Drops the databases a test stack created on a real Postgres (prefix t<id>_). */
export async function dropTestDatabases(config: PlatformConfig): Promise<void> {
  if (!config.POSTGRES_URL || !/^t[0-9a-f]{8}_$/.test(config.DATABASE_PREFIX)) return;
  const admin = new URL(config.POSTGRES_URL);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${config.DATABASE_PREFIX}%`]);
    for (const { datname } of rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
