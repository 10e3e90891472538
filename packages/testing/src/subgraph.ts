/**
 * One subgraph alone, for its own tests: started by the production bootstrap (startSubgraph) on a
 * free port with a throwaway database (on the Postgres of POSTGRES_URL: yours, or the embedded one jest's globalSetup starts,
 * a uniquely named database dropped at stop) and its own bus (in-process; Kafka when KAFKA_BROKERS
 * is set, with a unique topic and consumer-group namespace). Requests are signed as the gateway
 * signs them, for identities the test makes up; facts of other domains arrive as the events those
 * domains publish. Peers (read-through) are absent unless the test names where they answer.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readConfig, databaseUrlFor, testLogLevel, type PlatformConfig } from '@crm/config';
import { dropDatabase, type Database } from '@crm/database';
import { signIdentity, type Identity, type Role } from '@crm/runtime';
import { gatewaySigningKey } from '@crm/runtime';
import { createLogger } from '@crm/telemetry';
import { startSubgraph, type SubgraphDefinition, type SubgraphRuntime } from '@crm/runtime';
import { createBus } from '@crm/events';
import type { EventBus } from '@crm/events';
import { ALL_TOPICS, EVENTS, PRODUCERS, type Envelope, type EventData, type EventType } from '@crm/events';
import { buildEnvelope, type EventCause } from '@crm/events';

export interface GraphQLResult<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string; [k: string]: unknown } }[];
  headers: Headers;
}

/** A made-up user and their requests to the subgraph under test (signed as the gateway would). */
export interface TestCaller {
  id: string;
  name: string;
  email: string;
  role: Role;
  identity: Identity;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
}

export interface TestSubgraphOptions {
  /** Settings on top of the environment and the test defaults (e.g. a job's interval). */
  env?: Record<string, string>;
  /** GraphQL URLs of other subgraphs for read-through; any other peer is absent (null). */
  peers?: Record<string, string>;
}

export interface TestSubgraph {
  name: string;
  url: string;
  config: PlatformConfig;
  runtime: SubgraphRuntime;
  db: Database;
  bus: EventBus;
  /** A request signed for `identity` (null: anonymous), as the gateway sends it. */
  call<T = any>(identity: Identity | null, query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
  /** A new made-up user of `role` (random id and email); nothing is written anywhere. */
  user(role?: Role, name?: string): TestCaller;
  /** An event as its owning domain builds it (the kit's envelope builder; source = the topic's producer). */
  envelope<T extends EventType>(type: T, aggregateId: string, data: EventData<T>, cause?: Partial<EventCause>): Envelope<T>;
  /** Publishes envelopes as they are, in order (several at once, or one again: a redelivery). */
  deliver(...envelopes: Envelope[]): Promise<void>;
  /** Builds an event as its owning domain would and publishes it. */
  publish<T extends EventType>(type: T, aggregateId: string, data: EventData<T>, cause?: Partial<EventCause>): Promise<Envelope<T>>;
  /** Raw SQL on the subgraph's database, for assertions. */
  sql<T = Record<string, unknown>>(query: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/** The settings a test puts on top of the environment: throwaway names, quiet logs, embedded unless configured. */
export function testSettings(id: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: testLogLevel(),
    DATA_DIR: 'memory',
    DATABASE_PREFIX: `t${id}_`,
    KAFKA_NAMESPACE: `t${id}.`,
    OUTBOX_POLL_MS: '100',
    // suites run two at a time: stay well inside Postgres' max_connections (100)
    DATABASE_POOL_MAX: '4',
    ...env,
  };
}

export async function startTestSubgraph<L>(def: SubgraphDefinition<L>, options: TestSubgraphOptions = {}): Promise<TestSubgraph> {
  const id = randomBytes(4).toString('hex');
  const config = readConfig(undefined, testSettings(id, options.env));
  const logger = createLogger(def.name, config.LOG_LEVEL);
  const databaseUrl = databaseUrlFor(config, def.name, {});
  const bus = createBus(config, `test-${def.name}`, logger);
  let runtime: SubgraphRuntime;
  try {
    await bus.prepare(ALL_TOPICS);
    runtime = await startSubgraph(def, {
      config,
      port: 0,
      bus,
      logger,
      ...(databaseUrl ? { databaseUrl } : {}),
      peerUrl: (name) => options.peers?.[name] ?? null,
    });
  } catch (err) {
    await bus.close();
    if (databaseUrl) await dropDatabase(databaseUrl);
    throw err;
  }

  const call = <T>(identity: Identity | null, query: string, variables?: Record<string, unknown>) => {
    const body = JSON.stringify({ query, variables });
    return post<T>(runtime.url, body, signIdentity(identity, gatewaySigningKey(config), { subgraph: def.name, method: 'POST', body }));
  };
  const envelope = <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, cause: Partial<EventCause> = {}) =>
    buildEnvelope(PRODUCERS[EVENTS[type].topic], type, aggregateId, data, { actorId: null, ...cause });
  const deliver = (...envelopes: Envelope[]) => bus.publish(envelopes.map((e) => ({ topic: EVENTS[e.type].topic, key: e.aggregateId, value: JSON.stringify(e) })));
  let users = 0;

  return {
    name: def.name,
    url: runtime.url,
    config,
    runtime,
    db: runtime.db,
    bus,
    call,
    user(role: Role = 'SALES', name?: string) {
      users += 1;
      const identity: Identity = { userId: randomUUID(), role, email: `${role.toLowerCase()}${users}-${randomBytes(3).toString('hex')}@test.local` };
      return { id: identity.userId, name: name ?? `${role} ${users}`, email: identity.email, role, identity, gql: (q, v) => call(identity, q, v) };
    },
    envelope,
    deliver,
    async publish(type, aggregateId, data, cause) {
      const built = envelope(type, aggregateId, data, cause);
      await deliver(built);
      return built;
    },
    sql: async (query, params = []) => (await runtime.fork().getConnection().execute(query, params)) as never,
    async stop() {
      try {
        await runtime.stop();
        await bus.close();
      } finally {
        if (databaseUrl) await dropDatabase(databaseUrl);
      }
    },
  };
}

/** The user.* payload auth would publish for a made-up user (active, not approved, as registered). */
export function userData(user: Pick<TestCaller, 'id' | 'name' | 'email' | 'role'>, changes: Partial<EventData<'user.created'>> = {}): EventData<'user.created'> {
  return { userId: user.id, email: user.email, name: user.name, role: user.role, active: true, approved: false, tokenVersion: 0, ...changes };
}

async function post<T>(url: string, body: string, headers: Record<string, string>): Promise<GraphQLResult<T>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let parsed: { data?: T; errors?: GraphQLResult['errors'] };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    parsed = { errors: [{ message: text }] };
  }
  return { status: res.status, headers: res.headers, ...parsed };
}
