/**
 * The relay's leases on a real database (Postgres when POSTGRES_URL is set, embedded otherwise) and
 * the in-process bus: rows leased to a relay that froze are left alone until the lease expires and
 * then published by another relay, and nothing of the same aggregate overtakes them; two relays
 * draining one outbox at once publish every row once, each aggregate in version order.
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '@crm/telemetry';
import { databaseUrlFor, readConfig } from '@crm/config';
import { dropDatabase, openDatabase, type Database } from '@crm/database';
import { MemoryBus, OutboxMessage, stageEvent, startRelay, type DeliveredMessage, type Relay } from '@crm/events';
import { kitMigrations } from '@crm/database';

const logger = createLogger('relay-lease-test', 'silent');
let db: Database;
let dbUrl: string | undefined;
let bus: MemoryBus;
const relays: Relay[] = [];
const seen: { key: string; version: number; id: string }[] = [];

beforeAll(async () => {
  const config = readConfig(process.env, { DATA_DIR: 'memory', DATABASE_PREFIX: `trl${Date.now() % 1e6}_`, LOG_LEVEL: 'silent' });
  dbUrl = databaseUrlFor(config, 'relaylease');
  db = await openDatabase({ subgraph: 'relaylease', config, entities: [OutboxMessage], migrations: kitMigrations, logger });
  bus = new MemoryBus(logger);
  await bus.subscribe({
    groupId: 'reader',
    topics: ['user.events'],
    handle: async (m: DeliveredMessage) => {
      const e = JSON.parse(m.value!.toString()) as { id: string; aggregateId: string; aggregateVersion: number };
      seen.push({ key: e.aggregateId, version: e.aggregateVersion, id: e.id });
    },
  });
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  await bus?.close();
  await db?.close();
  if (dbUrl) await dropDatabase(dbUrl);
});

/** Commits one user.login event of aggregate `key` per entry, in order; returns their event ids. */
async function write(keys: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const key of keys) {
    const em = db.orm.em.fork();
    ids.push(stageEvent(em, 'test', 'user.login', key, { userId: key, email: 'a@test.local' }, { actorId: null }).id);
    await em.flush();
  }
  return ids;
}

const sql = <T>(text: string, params: unknown[] = []) => db.orm.em.fork().getConnection().execute<T[]>(text, params);
const until = async (check: () => Promise<boolean> | boolean, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

test("a frozen relay's leased rows wait for their lease, then go out through another relay, and its aggregate's later rows never overtake them", async () => {
  const k = randomUUID();
  const other = randomUUID();
  const [first] = await write([k]);
  // What a relay that claimed this row and froze leaves behind.
  await sql("UPDATE outbox SET lease_owner = 'frozen-relay', lease_until = now() + interval '3 seconds' WHERE id = ?", [first]);
  const [second] = await write([k]);
  const [unrelated] = await write([other]);

  const relay = startRelay({ orm: db.orm, bus, logger, pollMs: 50, leaseMs: 2000, sendTimeoutMs: 1000 });
  relays.push(relay);
  // The unrelated aggregate flows at once; k's rows wait behind the live lease.
  await until(() => seen.some((s) => s.id === unrelated));
  const leased = await sql<{ sent: boolean; owner: string }>('SELECT sent_at IS NOT NULL AS sent, lease_owner AS owner FROM outbox WHERE id = ?', [first]);
  expect(leased[0]).toEqual({ sent: false, owner: 'frozen-relay' });
  expect(seen.some((s) => s.id === second)).toBe(false);

  // Once the lease expires, the live relay takes the row over and publishes k's rows in order.
  await until(() => seen.some((s) => s.id === second));
  const ofK = seen.filter((s) => s.key === k).map((s) => s.id);
  expect(ofK).toEqual([first, second]);
  const rows = await sql<{ id: string; sent: boolean; owner: string }>('SELECT id, sent_at IS NOT NULL AS sent, lease_owner AS owner FROM outbox WHERE key = ? ORDER BY seq', [k]);
  expect(rows.every((r) => r.sent && r.owner !== 'frozen-relay')).toBe(true);
  await relay.stop();
  relays.splice(relays.indexOf(relay), 1);
});

test('two relays draining one outbox at once: every row published once, each aggregate in version order', async () => {
  const keys: string[] = Array.from({ length: 8 }, () => randomUUID());
  const writes = Array.from({ length: 240 }, (_, i) => keys[i % keys.length]!);
  const before = seen.length;
  // A broker whose acknowledgements take 0–30 ms, at random: one relay's send can outlast the other's claim and send.
  const slow = Object.assign(Object.create(bus) as MemoryBus, {
    publish: async (messages: Parameters<MemoryBus['publish']>[0]) => {
      await new Promise((r) => setTimeout(r, Math.random() * 30));
      return bus.publish(messages);
    },
  });
  const a = startRelay({ orm: db.orm, bus: slow, logger, pollMs: 20, leaseMs: 2000, sendTimeoutMs: 1000 });
  const b = startRelay({ orm: db.orm, bus: slow, logger, pollMs: 20, leaseMs: 2000, sendTimeoutMs: 1000 });
  relays.push(a, b);
  // Writers in parallel, one per aggregate, while both relays publish.
  const ids = (await Promise.all(keys.map((k) => write(writes.filter((w) => w === k))))).flat();
  await until(async () => Number((await sql<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL'))[0]!.n) === 0);
  await until(() => ids.every((id) => seen.some((s) => s.id === id)));
  const got = seen.slice(before).filter((s) => keys.includes(s.key));
  expect(got).toHaveLength(ids.length); // none twice
  for (const k of keys) {
    const versions = got.filter((s) => s.key === k).map((s) => s.version);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
    expect(new Set(versions).size).toBe(versions.length);
  }
  // Both took part (the lease is per row, not one relay for the whole database) — recorded, not required.
  const owners = await sql<{ owner: string; n: string }>(
    `SELECT lease_owner AS owner, count(*) AS n FROM outbox WHERE key IN (${keys.map(() => '?').join(', ')}) GROUP BY lease_owner`,
    keys,
  );
  console.log(`rows published per relay: ${owners.map((o) => o.n).join(' / ')}`);
});

test('every database connection carries the statement, lock and idle-in-transaction timeouts (DATABASE_*_TIMEOUT_MS)', async () => {
  const show = async (name: string) => (await sql<Record<string, string>>(`SHOW ${name}`))[0]![name];
  expect(await show('statement_timeout')).toBe('30s');
  expect(await show('lock_timeout')).toBe('10s');
  expect(await show('idle_in_transaction_session_timeout')).toBe('30s');
});
