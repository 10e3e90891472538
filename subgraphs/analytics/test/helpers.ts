import { randomUUID } from 'node:crypto';
import { eventually as kitEventually, userData, type TestCaller, type TestSubgraph } from '@crm/testing';
import { type Envelope, type EventData, type EventType } from '@crm/events';
import { type Role } from '@crm/runtime';

/** The first error's extensions.code of a result. */
export const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

export interface PublishOptions {
  actorId?: string | null;
  correlationId?: string;
  occurredAt?: string;
}

/** The kit's eventually with more patience: the test machine is shared and often loaded. */
export const eventually = <T>(check: () => Promise<T | undefined | null | false>) => kitEventually(check, { timeoutMs: 60_000 });

/** Builds an envelope as its producing subgraph would, and publishes it to the subgraph's bus. */
export function publisher(analytics: TestSubgraph) {
  const build = <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, o: PublishOptions = {}): Envelope<T> => {
    const env = analytics.envelope(type, aggregateId, data, { actorId: o.actorId ?? null, ...(o.correlationId ? { correlationId: o.correlationId } : {}) });
    if (o.occurredAt) env.occurredAt = o.occurredAt;
    return env;
  };
  const send = (...envs: Envelope[]) => analytics.deliver(...envs);
  const publish = async <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, o: PublishOptions = {}) => {
    const env = build(type, aggregateId, data, o);
    await send(env);
    return env;
  };
  return { build, send, publish };
}

/** Runs SQL on the analytics database (test-side inspection only). */
export const sql = <T = Record<string, unknown>>(analytics: TestSubgraph, query: string, params: unknown[] = []) => analytics.sql<T>(query, params);

/** Waits until analytics' user directory knows these users with their current role. */
export async function directoryKnows(analytics: TestSubgraph, ...users: TestCaller[]) {
  await eventually(async () => {
    const rows = await sql<{ id: string; role: string }>(analytics, `SELECT id, role FROM user_refs WHERE id = ANY(string_to_array(?, ','))`, [users.map((u) => u.id).join(',')]);
    return users.every((u) => rows.some((r) => r.id === u.id && r.role === u.role));
  });
}

/** Made-up users that auth announced (user.created), once analytics' user directory has them. */
export async function newUsers(analytics: TestSubgraph, ...roles: Role[]): Promise<TestCaller[]> {
  const users = roles.map((role) => analytics.user(role));
  await analytics.deliver(...users.map((u) => analytics.envelope('user.created', u.id, userData(u), { actorId: u.id })));
  await directoryKnows(analytics, ...users);
  return users;
}

/** Waits until analytics has consumed the event with this id (it is in the inbox). */
export async function consumed(analytics: TestSubgraph, ...events: Envelope[]) {
  await eventually(async () => {
    const rows = await sql<{ n: number }>(analytics, `SELECT count(*)::int AS n FROM inbox WHERE consumer = 'analytics' AND event_id::text = ANY(string_to_array(?, ','))`, [
      events.map((e) => e.id).join(','),
    ]);
    return Number(rows[0]?.n) === events.length;
  });
}

export const MY_NOTIFICATIONS = `query($unreadOnly: Boolean, $first: Int, $after: String) {
  myNotifications(unreadOnly: $unreadOnly, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id type title body entityType entityId readAt createdAt recipient { id } } }
  }
}`;

export async function notificationsOf(u: TestCaller, unreadOnly = false) {
  const r = await u.gql(MY_NOTIFICATIONS, { unreadOnly, first: 100 });
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data.myNotifications.edges.map((e: { node: any }) => e.node) as {
    id: string;
    type: string;
    title: string;
    body: string | null;
    entityType: string | null;
    entityId: string | null;
    readAt: string | null;
    recipient: { id: string };
  }[];
}

export { randomUUID };

const RELAY = /^(BEGIN|COMMIT|ROLLBACK)|pg_try_advisory_xact_lock|FROM outbox|UPDATE outbox/i;

/**
 * The SELECT statements analytics runs while `run` (a read) runs, without those of the outbox
 * relay, which polls in the background, and the writes of event handlers still catching up
 * (db.statementCount() counts all of them; they are filtered out here).
 */
export async function statementsOf(analytics: TestSubgraph, run: () => Promise<void>): Promise<string[]> {
  const knex = analytics.db.orm.em.getConnection().getKnex();
  const seen: string[] = [];
  const listener = (q: { sql: string }) => {
    const sql = q.sql.trim();
    if (/^select/i.test(sql) && !RELAY.test(sql)) seen.push(sql);
  };
  knex.on('query', listener);
  try {
    await run();
  } finally {
    knex.off('query', listener);
  }
  return seen;
}
