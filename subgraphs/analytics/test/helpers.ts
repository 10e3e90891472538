import { randomUUID } from 'node:crypto';
import {
  EVENTS, PRODUCERS, buildEnvelope, eventually as kitEventually, type Envelope, type EventData, type EventType, type Identity,
} from '@crm/kit';
import { gqlRequest, type TestStack, type TestUser } from '@crm/platform';

export { errorCode as code, identityOf } from '@crm/platform';


export interface PublishOptions {
  actorId?: string | null;
  correlationId?: string;
  occurredAt?: string;
}

/** The kit's eventually with more patience: the test machine is shared and often loaded. */
export const eventually = <T>(check: () => Promise<T | undefined | null | false>) => kitEventually(check, { timeoutMs: 60_000 });

/** Builds an envelope as its producing subgraph would, and publishes it to the stack's bus. */
export function publisher(stack: TestStack) {
  const build = <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, o: PublishOptions = {}): Envelope<T> => {
    const topic = EVENTS[type].topic;
    const env = buildEnvelope(PRODUCERS[topic], type, aggregateId, data, {
      actorId: o.actorId ?? null,
      ...(o.correlationId ? { correlationId: o.correlationId } : {}),
    });
    if (o.occurredAt) env.occurredAt = o.occurredAt;
    return env;
  };
  const send = async (...envs: Envelope[]) => {
    await stack.bus.publish(envs.map((e) => ({ topic: EVENTS[e.type].topic, key: e.aggregateId, value: JSON.stringify(e) })));
  };
  const publish = async <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, o: PublishOptions = {}) => {
    const env = build(type, aggregateId, data, o);
    await send(env);
    return env;
  };
  return { build, send, publish };
}

/** Runs SQL on the analytics database (test-side inspection only). */
export const sql = <T = Record<string, unknown>>(stack: TestStack, query: string, params: unknown[] = []) => stack.sql<T>('analytics', query, params);

/** Waits until analytics' user directory knows these users with their current role. */
export async function directoryKnows(stack: TestStack, ...users: TestUser[]) {
  await eventually(async () => {
    const rows = await sql<{ id: string; role: string }>(stack, `SELECT id, role FROM user_refs WHERE id = ANY(string_to_array(?, ','))`, [users.map((u) => u.id).join(',')]);
    return users.every((u) => rows.some((r) => r.id === u.id && r.role === u.role));
  });
}

/** Waits until analytics has consumed the event with this id (it is in the inbox). */
export async function consumed(stack: TestStack, ...events: Envelope[]) {
  await eventually(async () => {
    const rows = await sql<{ n: number }>(stack, `SELECT count(*)::int AS n FROM inbox WHERE consumer = 'analytics' AND event_id::text = ANY(string_to_array(?, ','))`, [events.map((e) => e.id).join(',')]);
    return Number(rows[0]?.n) === events.length;
  });
}

/** A request straight to the analytics subgraph, signed as the gateway would sign it. */
export const direct = (stack: TestStack, identity: Identity | null, query: string, variables?: Record<string, unknown>) =>
  stack.signed('analytics', identity, query, variables);


export const MY_NOTIFICATIONS = `query($unreadOnly: Boolean, $first: Int, $after: String) {
  myNotifications(unreadOnly: $unreadOnly, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id type title body entityType entityId readAt createdAt recipient { id } } }
  }
}`;

export async function notificationsOf(u: TestUser, unreadOnly = false) {
  const r = await u.gql(MY_NOTIFICATIONS, { unreadOnly, first: 100 });
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data.myNotifications.edges.map((e: { node: any }) => e.node) as {
    id: string; type: string; title: string; body: string | null; entityType: string | null; entityId: string | null; readAt: string | null;
    recipient: { id: string };
  }[];
}

export { randomUUID, gqlRequest };

const RELAY = /^(BEGIN|COMMIT|ROLLBACK)|pg_try_advisory_xact_lock|FROM outbox|UPDATE outbox/i;

/**
 * The SELECT statements analytics runs while `run` (a read) runs, without those of the outbox
 * relay, which polls in the background, and the writes of event handlers still catching up
 * (db.statementCount() counts all of them; they are filtered out here).
 */
export async function statementsOf(stack: TestStack, run: () => Promise<void>): Promise<string[]> {
  const knex = stack.subgraphs.analytics!.db.orm.em.getConnection().getKnex();
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
