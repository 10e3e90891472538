/**
 * Many replicas on one Kafka, as separate processes: two gateways, two replicas each of customer
 * and analytics (and auth), on real Kafka, Postgres and Redis. The replicas of a subgraph start at
 * once on empty databases, share its consumer group (partitions split), and when one replica of
 * each is killed with SIGKILL under a steady write load through both gateways, the survivor takes
 * over its partitions and its outbox: every committed customer's event is applied exactly once.
 * A subscriber on gateway A gets the notification of a mutation sent to gateway B; the rate limit
 * is one budget across both gateways. Figures (lost, doubled, takeover time, req/s through the
 * gateways and events/s applied by analytics over 15 s windows, with two replicas and with one)
 * are printed, and written to bench/results/multi-replica.json
 * with WRITE_FIGURES=1 (`npm run bench:replicas`).
 * Needs real services: runs where POSTGRES_URL, KAFKA_BROKERS and REDIS_URL are set (CI).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { composeSupergraph, readSupergraphConfig } from '@crm/gateway';
import { consumerGroup, EVENTS, KafkaBus, RELAY_LOCK, type EventType } from '@crm/events';
import { databaseUrlFor, readConfig } from '@crm/config';
import { eventually, rawGraphQL, rawRequest, type RawResult } from '@crm/testing';
import { freePort } from '@crm/database';
import { gatewaySigningKey, signIdentity, type Identity } from '@crm/runtime';
import { ADMIN, dropTestDatabases, ROOT, subgraphByName, SUPERGRAPH_CONFIG } from '@crm/platform';
import { balancer, startService, waitFor, type Balancer, type ServiceProcess } from './support/replicas';

const enabled = Boolean(process.env.POSTGRES_URL && process.env.KAFKA_BROKERS && process.env.REDIS_URL);
const describeReal = enabled ? describe : describe.skip;

const id = randomBytes(4).toString('hex');
const PARTITIONS = 4;
const POINTS = 3000;
const env: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  DATABASE_PREFIX: `t${id}_`,
  KAFKA_NAMESPACE: `t${id}.`,
  KAFKA_TOPIC_PARTITIONS: String(PARTITIONS),
  OUTBOX_POLL_MS: '200',
  // seven subgraph processes beside other suites: stay well inside Postgres' max_connections
  DATABASE_POOL_MAX: '3',
  ADMIN_EMAIL: ADMIN.email,
  ADMIN_PASSWORD: ADMIN.password,
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_POINTS: String(POINTS),
  RATE_LIMIT_WINDOW_SECONDS: '900',
  TRUST_PROXY_HOPS: '1',
};
const config = readConfig(process.env, env);
const logDir = join(tmpdir(), `crm-multi-replica-${id}`);
const WINDOW_MS = 15_000;
/** Partitions a subgraph's group consumes: those of every topic it has handlers for. */
const partitionsOf = (subgraph: string) => new Set(Object.keys(subgraphByName(subgraph).consumes ?? {}).map((t) => EVENTS[t as EventType].topic)).size * PARTITIONS;

const CREATE = 'mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }';
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken user { id role email } } }';

interface Rep {
  identity: Identity;
  token: string;
}

describeReal('many replicas on one Kafka', () => {
  jest.setTimeout(600_000);
  const processes: ServiceProcess[] = [];
  const balancers: Balancer[] = [];
  const ws: WsClient[] = [];
  const pg: Record<string, Client> = {};
  let kafka: KafkaBus;
  let gateways: ServiceProcess[];
  let customers: ServiceProcess[];
  let analytics: ServiceProcess[];
  const reps: Rep[] = [];
  const figures: Record<string, unknown> = { date: new Date().toISOString(), partitions: PARTITIONS };
  let ipCounter = 0;
  const nextIp = () => `10.${(ipCounter >> 8) & 255}.${ipCounter++ & 255}.7`;

  const post = (gateway: ServiceProcess, query: string, variables: Record<string, unknown>, headers: Record<string, string> = {}) =>
    rawGraphQL(gateway.url, query, { variables, headers });
  const sql = async <T>(subgraph: string, text: string, params: unknown[] = []) => (await pg[subgraph]!.query(text, params)).rows as T[];
  const count = async (subgraph: string, text: string, params: unknown[] = []) => Number((await sql<{ n: string }>(subgraph, text, params))[0]!.n);

  async function register(gateway: ServiceProcess): Promise<Rep> {
    const email = `mr-${randomUUID()}@test.local`;
    const res = await post(gateway, REGISTER, { input: { email, password: 'password-1234', name: 'Replica rep' } }, { 'x-forwarded-for': nextIp() });
    const { body } = res;
    if (!body.data?.register) throw new Error(`register failed: ${JSON.stringify(body.errors)}`);
    const { accessToken, user } = body.data.register;
    return { identity: { userId: user.id, role: user.role, email: user.email }, token: accessToken };
  }

  /** Members of a subgraph's consumer group (or of the group `groupId`) and the partitions each holds; none while it rebalances. */
  async function groupMembers(subgraph: string, groupId = `${config.KAFKA_NAMESPACE}${consumerGroup(subgraph)}`): Promise<{ member: string; partitions: number }[]> {
    const admin = kafka.admin();
    try {
      const group = await admin.describeGroup(groupId);
      if (group.state !== 'STABLE') return [];
      return group.members.map((m) => ({ member: m.clientHost + m.id, partitions: m.partitions }));
    } finally {
      await admin.close();
    }
  }

  beforeAll(async () => {
    const started = Date.now();
    // A Service in front of the replicas of each subgraph (empty until they start): the gateways
    // route to it and the subgraphs read through to their peers by it.
    customers = [];
    analytics = [];
    const lbCustomer = await balancer(customers);
    const lbAnalytics = await balancer(analytics);
    balancers.push(lbCustomer, lbAnalytics);
    const authPort = await freePort();
    const nobody = `http://127.0.0.1:${await freePort()}/graphql`; // subgraphs this story does not run
    const urls: Record<string, string> = { auth: `http://127.0.0.1:${authPort}/graphql`, customer: lbCustomer.url, analytics: lbAnalytics.url };
    Object.assign(env, { AUTH_URL: urls.auth!, CUSTOMER_URL: urls.customer!, ANALYTICS_URL: urls.analytics!, SALES_ACTIVITY_URL: nobody, OPPORTUNITY_URL: nobody });
    const start = (service: string, label: string, port?: number) => startService(service, label, env, logDir, port).then((p) => (processes.push(p), p));
    // Every replica at once, on empty databases: the migration lock lets one of each pair migrate.
    const [auth, c1, c2, a1, a2] = await Promise.all([
      start('auth', 'auth', authPort),
      start('customer', 'customer-1'),
      start('customer', 'customer-2'),
      start('analytics', 'analytics-1'),
      start('analytics', 'analytics-2'),
    ]);
    customers.push(c1, c2);
    analytics.push(a1, a2);
    await Promise.all([auth, ...customers, ...analytics].map((p) => waitFor(p, '/ready')));
    const sources = readSupergraphConfig(SUPERGRAPH_CONFIG, {})
      .filter((s) => urls[s.name])
      .map((s) => ({ ...s, url: urls[s.name]! }));
    mkdirSync(logDir, { recursive: true });
    const supergraphPath = join(logDir, 'supergraph.graphql');
    writeFileSync(supergraphPath, composeSupergraph(sources));
    const gatewayEnv = { SUPERGRAPH_PATH: supergraphPath };
    gateways = await Promise.all(['gateway-a', 'gateway-b'].map((label) => startService('gateway', label, { ...env, ...gatewayEnv }, logDir).then((p) => (processes.push(p), p))));
    await Promise.all(gateways.map((g) => waitFor(g, '/ready')));
    figures.startupSeconds = Math.round((Date.now() - started) / 1000);

    for (const name of ['auth', 'customer', 'analytics']) {
      pg[name] = new Client({ connectionString: databaseUrlFor(config, name) });
      await pg[name].connect();
    }
    kafka = new KafkaBus(config, 'multi-replica-test');
    for (let i = 0; i < 6; i++) reps.push(await register(gateways[i % 2]!));
  });

  afterAll(async () => {
    if (process.env.WRITE_FIGURES === '1') writeFileSync(join(ROOT, 'bench/results/multi-replica.json'), `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`multi-replica figures: ${JSON.stringify(figures)}\nlogs: ${logDir}`);
    await Promise.all(ws.map(async (c) => c.dispose()));
    for (const p of processes) p.kill('SIGTERM');
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(processes.map((p) => p.exited)), new Promise((r) => (grace = setTimeout(r, 20_000)))]);
    clearTimeout(grace);
    for (const p of processes) p.kill('SIGKILL');
    await Promise.all(balancers.map((b) => b.close()));
    await Promise.all(Object.values(pg).map((c) => c.end()));
    await kafka?.close();
    await dropTestDatabases(config);
  });

  test('two replicas started at once on an empty database migrated it once', async () => {
    for (const name of ['customer', 'analytics']) {
      const rows = await sql<{ name: string }>(name, 'SELECT name FROM mikro_orm_migrations');
      expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
    }
    expect(processes.every((p) => p.alive())).toBe(true);
  });

  test('the replicas of a subgraph share its consumer group: the partitions are split between them', async () => {
    for (const name of ['customer', 'analytics']) {
      // Joining a group is background work: wait until both replicas hold partitions.
      const members = await eventually(
        async () => {
          const m = await groupMembers(name);
          return m.length === 2 && m.every((x) => x.partitions > 0) ? m : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 1000 },
      );
      expect(members.reduce((n, m) => n + m.partitions, 0)).toBe(partitionsOf(name));
      figures[`${name}PartitionsPerReplica`] = members.map((m) => m.partitions);
    }
  });

  test('a subscriber on gateway A receives the notification of a mutation sent to gateway B', async () => {
    const rep = reps[0]!;
    const received: { entityId: string; type: string }[] = [];
    const client = createClient({
      url: gateways[0]!.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${rep.token}` },
    });
    ws.push(client);
    let subscribed!: () => void;
    const acknowledged = new Promise<void>((resolve) => (subscribed = resolve));
    client.on('connected', () => subscribed());
    client.subscribe<{ notificationAdded: { entityId: string; type: string } }>(
      { query: 'subscription { notificationAdded { type entityId } }' },
      { next: (r) => r.data && received.push(r.data.notificationAdded), error: () => undefined, complete: () => undefined },
    );
    await acknowledged;
    // Each gateway's live feed reads from the latest offset in a group of its own: wait until both
    // groups hold their partitions (background), so the event is not produced before they look.
    await eventually(
      async () => {
        const admin = kafka.admin();
        const live = (await admin.listGroups().finally(() => admin.close())).filter((g) => g.startsWith(`${config.KAFKA_NAMESPACE}gateway-live-`));
        const members = await Promise.all(live.map((g) => groupMembers('', g)));
        return live.length === 2 && members.every((m) => m.length === 1 && m[0]!.partitions > 0);
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    // Subscribing has no acknowledgement in graphql-ws: wait until gateway A has registered it.
    await eventually(async () => {
      const stats = (await (await fetch(gateways[0]!.url.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number };
      return stats.subscriptions === 1;
    });
    const res = await post(gateways[1]!, CREATE, { input: { name: `Live ${randomUUID()}` } }, { authorization: `Bearer ${rep.token}` });
    const customerId = res.body.data!.createCustomer.id as string;
    await eventually(async () => received.some((n) => n.entityId === customerId), { timeoutMs: 60_000 });
    expect(received.find((n) => n.entityId === customerId)?.type).toBe('CUSTOMER_ASSIGNED');
  });

  test('the rate limit is one budget across both gateways', async () => {
    const user = await register(gateways[0]!);
    // 20 × users(first: 100): charged by its estimated cost before auth refuses it (SALES).
    const costly = `{ ${Array.from({ length: 20 }, (_, i) => `u${i}: users(first: 100) { edges { node { id } } }`).join(' ')} }`;
    const remaining: number[] = [];
    let refused: RawResult | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const res = await post(gateways[i % 2]!, costly, {}, { authorization: `Bearer ${user.token}` });
      if (res.status === 429) refused = res;
      else remaining.push(Number(res.headers.get('ratelimit-remaining')));
    }
    const per = POINTS - remaining[0]!;
    expect(per).toBeGreaterThan(1);
    // Every request, whichever gateway took it, spent from the one budget: no gap, no double count.
    expect(remaining).toEqual(Array.from({ length: Math.floor(POINTS / per) }, (_, k) => POINTS - per * (k + 1)));
    expect(refused?.status).toBe(429);
    const other = await post(gateways[remaining.length % 2 === 0 ? 1 : 0]!, costly, {}, { authorization: `Bearer ${user.token}` });
    expect(other.status).toBe(429);
  });

  test('kill -9 one replica of each under write load: the survivor takes over, nothing lost, nothing doubled', async () => {
    const acknowledged: string[] = [];
    let failed = 0;
    let stop = false;
    let seq = 0;
    const users: string[] = [];
    const writer = async (w: number) => {
      while (!stop) {
        const rep = reps[w % reps.length]!;
        const gateway = gateways[seq++ % 2]!;
        try {
          const res = await post(gateway, CREATE, { input: { name: `Load ${w}-${seq}` } }, { authorization: `Bearer ${rep.token}` });
          const { body } = res;
          if (body.data?.createCustomer) acknowledged.push(body.data.createCustomer.id);
          else failed += 1;
        } catch {
          failed += 1;
        }
      }
    };
    const registrar = async () => {
      while (!stop) {
        try {
          users.push((await register(gateways[users.length % 2]!)).identity.userId);
        } catch {
          failed += 1;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    const applied = () => count('analytics', 'SELECT count(*) AS n FROM inbox');
    /** Over a window: requests per second acknowledged through both gateways, events per second applied by analytics. */
    const measure = async () => {
      const [req0, ev0, t0] = [acknowledged.length, await applied(), Date.now()];
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const seconds = (Date.now() - t0) / 1000;
      return { reqPerSecond: (acknowledged.length - req0) / seconds, eventsPerSecond: ((await applied()) - ev0) / seconds };
    };

    const load = [...Array.from({ length: 6 }, (_, w) => writer(w)), registrar()];
    await new Promise((r) => setTimeout(r, 3000)); // warm-up
    const two = await measure();

    // Keep the relays of the customer database from publishing, commit a few customers on the
    // replica about to die (straight to it, signed as the gateway would), then kill it: its
    // committed, unpublished events can only go out through the survivor.
    const relayLock = new Client({ connectionString: databaseUrlFor(config, 'customer') });
    await relayLock.connect();
    await relayLock.query('SELECT pg_advisory_lock($1)', [RELAY_LOCK]);
    const victim = customers[0]!;
    const stranded: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ query: CREATE, variables: { input: { name: `Stranded ${i}` } } });
      const res = await rawRequest(victim.url, body, { headers: signIdentity(reps[1]!.identity, gatewaySigningKey(config), { subgraph: 'customer', method: 'POST', body }) });
      stranded.push(res.body.data!.createCustomer.id);
    }
    expect(await count('customer', 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND key = ANY($1)', [stranded])).toBe(5);
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    analytics[0]!.kill('SIGKILL');
    await Promise.all([victim.exited, analytics[0]!.exited]);
    await relayLock.query('SELECT pg_advisory_unlock($1)', [RELAY_LOCK]);
    await relayLock.end();

    // Takeover: the survivor alone holds every partition of its group (after the dead member's session expires).
    const takeover: Record<string, number> = {};
    await Promise.all(
      ['customer', 'analytics'].map(async (name) => {
        await eventually(
          async () => {
            const m = await groupMembers(name);
            return m.length === 1 && m[0]!.partitions === partitionsOf(name);
          },
          { timeoutMs: 120_000, intervalMs: 250 },
        );
        takeover[name] = (Date.now() - killedAt) / 1000;
      }),
    );
    const one = await measure();

    // Scale back out: a new replica of each joins, the partitions are split again.
    const replacements = await Promise.all(
      [
        ['customer', 'customer-3', customers],
        ['analytics', 'analytics-3', analytics],
      ].map(async ([service, label, list]) => {
        const p = await startService(service as string, label as string, env, logDir);
        processes.push(p);
        (list as ServiceProcess[]).push(p); // the balancer in front of them sees it
        await waitFor(p, '/ready');
        return p;
      }),
    );
    for (const name of ['customer', 'analytics']) {
      await eventually(
        async () => {
          const m = await groupMembers(name);
          return m.length === 2 && m.every((x) => x.partitions > 0);
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
    }
    const twoAgain = await measure();
    stop = true;
    await Promise.all(load);
    expect(replacements.every((p) => p.alive())).toBe(true);

    // Quiescence (background effects): every committed customer and user reached analytics.
    const committed = async () => (await sql<{ id: string }>('customer', 'SELECT id FROM customers')).map((r) => r.id);
    const allCustomers = await committed();
    const metric = async (type: string) => Number((await sql<{ n: string }>('analytics', 'SELECT coalesce(max(count), 0) AS n FROM event_metrics WHERE type = $1', [type]))[0]!.n);
    const userCount = await count('auth', 'SELECT count(*) AS n FROM users');
    await eventually(async () => (await metric('customer.created')) >= allCustomers.length && (await metric('user.created')) >= userCount, {
      timeoutMs: 300_000,
      intervalMs: 500,
    }).catch(() => undefined); // the assertions below say what is missing

    const notified = new Map(
      (await sql<{ entity_id: string; n: string }>('analytics', "SELECT entity_id, count(*) AS n FROM notifications WHERE type = 'CUSTOMER_ASSIGNED' GROUP BY entity_id")).map(
        (r) => [r.entity_id, Number(r.n)],
      ),
    );
    const lost = allCustomers.filter((c) => !notified.has(c)).length + Math.max(0, allCustomers.length - (await metric('customer.created')));
    const doubled = [...notified.values()].reduce((n, k) => n + Math.max(0, k - 1), 0) + Math.max(0, (await metric('customer.created')) - allCustomers.length);
    Object.assign(figures, {
      customersCommitted: allCustomers.length,
      writesAcknowledged: acknowledged.length,
      writesFailedDuringKill: failed,
      usersRegistered: users.length,
      lost,
      doubled,
      takeoverSeconds: takeover,
      twoReplicas: two,
      oneReplica: one,
      twoReplicasAgain: twoAgain,
      ratioTwoToOne: {
        reqPerSecond: (two.reqPerSecond + twoAgain.reqPerSecond) / 2 / one.reqPerSecond,
        eventsPerSecond: (two.eventsPerSecond + twoAgain.eventsPerSecond) / 2 / one.eventsPerSecond,
      },
    });

    expect({ lost, doubled }).toEqual({ lost: 0, doubled: 0 });
    // Every acknowledged write is committed; the stranded ones went out through the survivor's relay.
    expect(acknowledged.filter((c) => !allCustomers.includes(c))).toEqual([]);
    expect(stranded.map((c) => notified.get(c))).toEqual([1, 1, 1, 1, 1]);
    expect(await count('customer', 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL')).toBe(0);
    // Users: the customer survivor's rep directory and analytics' user directory have every one, once.
    expect(await metric('user.created')).toBe(userCount);
    expect(await count('customer', 'SELECT count(*) AS n FROM reps')).toBe(userCount);
    expect(customers[1]!.alive() && analytics[1]!.alive()).toBe(true);
  });

  test('SIGTERM (a rolling update): the replica leaves its group, exits 0, the other takes over without a session timeout', async () => {
    const leaving = analytics[1]!;
    const sentAt = Date.now();
    leaving.kill('SIGTERM');
    expect(await leaving.exited).toBe(0);
    await eventually(
      async () => {
        const m = await groupMembers('analytics');
        return m.length === 1 && m[0]!.partitions === partitionsOf('analytics');
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    figures.gracefulTakeoverSeconds = (Date.now() - sentAt) / 1000;
    // …and it consumes: a new customer reaches analytics once.
    const res = await post(gateways[0]!, CREATE, { input: { name: 'After the rollout' } }, { authorization: `Bearer ${reps[2]!.token}` });
    const customerId = res.body.data!.createCustomer.id as string;
    const notifications = () => count('analytics', "SELECT count(*) AS n FROM notifications WHERE type = 'CUSTOMER_ASSIGNED' AND entity_id = $1", [customerId]);
    await eventually(async () => (await notifications()) > 0, { timeoutMs: 60_000 });
    expect(await notifications()).toBe(1);
  });
});
