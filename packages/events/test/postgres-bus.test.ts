/**
 * The Postgres event log beyond the shared contract (event-bus-contract.test.ts runs that against it
 * too): a member frozen mid-batch loses its partitions once its lease lapses and the next member
 * gets everything after the last commit (and the frozen one, woken, cannot commit over it); two
 * members split the partitions, each owned by one; retention deletes only what every group has
 * committed past; createBus picks the log without Kafka. Real Postgres (POSTGRES_URL), a throwaway
 * database for the file.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { readConfig } from '@crm/config';
import { dropDatabase } from '@crm/database';
import type { DeliveredMessage, Subscription } from '../src/bus';
import { PostgresBus, busKind, createBus } from '../src/buses';
import { eventually } from '@crm/testing';

const POSTGRES = process.env.POSTGRES_URL;
const PREFIX = `t${randomBytes(4).toString('hex')}_`;
const maybe = POSTGRES ? describe : describe.skip;

maybe('Postgres event log', () => {
  jest.setTimeout(180_000);
  let ns: string;
  const buses: PostgresBus[] = [];
  const subs: Subscription[] = [];
  const children: ChildProcessWithoutNullStreams[] = [];
  const config = (overrides: Record<string, string> = {}) =>
    readConfig(process.env, { KAFKA_BROKERS: '', DATABASE_PREFIX: PREFIX, KAFKA_NAMESPACE: ns, KAFKA_TOPIC_PARTITIONS: '3', LOG_LEVEL: 'silent', ...overrides });
  const bus = (options?: ConstructorParameters<typeof PostgresBus>[3]) => {
    const b = new PostgresBus(config(), 'test', undefined, options);
    buses.push(b);
    return b;
  };
  const text = (m: DeliveredMessage) => m.value?.toString() ?? '';

  beforeEach(() => {
    ns = `log-${randomUUID().slice(0, 8)}.`;
  });
  afterEach(async () => {
    for (const c of children.splice(0))
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGCONT');
        c.kill('SIGKILL');
      }
    await Promise.all(subs.splice(0).map((s) => s.stop().catch(() => undefined)));
    await Promise.all(buses.splice(0).map((b) => b.close()));
  });
  afterAll(async () => {
    await dropDatabase(new PostgresBus(readConfig(process.env, { KAFKA_BROKERS: '', DATABASE_PREFIX: PREFIX }), 'test').url);
  });

  test('createBus: the log without Kafka when a Postgres server is configured; Kafka when brokers are', () => {
    expect(busKind(readConfig({ POSTGRES_URL: POSTGRES }, {}))).toBe('postgres');
    expect(busKind(readConfig({ POSTGRES_URL: POSTGRES, KAFKA_BROKERS: '127.0.0.1:9092' }, {}))).toBe('kafka');
    expect(busKind(readConfig({}, {}))).toBe('memory');
    const b = createBus(readConfig({ POSTGRES_URL: POSTGRES, DATABASE_PREFIX: PREFIX }, {}), 'test');
    expect(b.kind).toBe('postgres');
    expect((b as PostgresBus).url).toMatch(new RegExp(`/${PREFIX}events$`));
    void b.close();
  });

  test('a member frozen mid-batch: once its lease lapses the next member gets everything after the last commit; woken, it cannot commit', async () => {
    const b = bus({ heartbeatMs: 300, sessionMs: 3000 });
    await b.ensureTopics(['frozen']);
    const values = Array.from({ length: 30 }, (_, i) => `v${i}`);
    await b.publish(values.map((v) => ({ topic: 'frozen', key: 'one-key', value: v })));

    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/log-member.ts')], {
      env: {
        ...process.env,
        KAFKA_BROKERS: '',
        DATABASE_PREFIX: PREFIX,
        KAFKA_NAMESPACE: ns,
        KAFKA_TOPIC_PARTITIONS: '3',
        GROUP: 'g',
        TOPIC: 'frozen',
        BATCH_SIZE: '5',
        HANG_AFTER: '10',
        HEARTBEAT_MS: '300',
        SESSION_MS: '3000',
      },
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    await eventually(async () => out.includes('"hanging"'), { timeoutMs: 90_000 });
    const admin = b.admin();
    const committed = async () => [...((await admin.committedOffsets(b.topic('g'), [b.topic('frozen')])).get(b.topic('frozen'))?.values() ?? [])].filter((o) => o >= 0n);
    expect(await committed()).toEqual([10n]); // two batches handled and committed, the third in hand
    child.kill('SIGSTOP'); // frozen: its database session stays open, only its lease can lapse

    const got: string[] = [];
    subs.push(await b.subscribe({ groupId: 'g', topics: ['frozen'], batchSize: 7, handleBatch: async (ms) => void got.push(...ms.map(text)) }));
    await eventually(async () => got.length >= 20, { timeoutMs: 90_000 });
    expect(got).toEqual(values.slice(10)); // everything after the last commit, once, in order
    await eventually(async () => (await committed()).includes(30n), { timeoutMs: 30_000 });

    // woken, the old member finishes its batch: its commit is refused (the partition is not its own)
    child.kill('SIGCONT');
    child.stdin.write('release\n');
    await eventually(async () => out.includes('stopped'), { timeoutMs: 60_000 });
    expect(await committed()).toEqual([30n]);
    expect(got).toEqual(values.slice(10));
  });

  test('two members split the partitions, each owned by one; when one leaves the other takes them all', async () => {
    const a = bus({ heartbeatMs: 300 });
    const b = bus({ heartbeatMs: 300 });
    await a.ensureTopics(['split']);
    const got = { a: [] as DeliveredMessage[], b: [] as DeliveredMessage[] };
    const subA = await a.subscribe({ groupId: 'workers', topics: ['split'], handle: async (m) => void got.a.push(m) });
    subs.push(subA);
    subs.push(await b.subscribe({ groupId: 'workers', topics: ['split'], handle: async (m) => void got.b.push(m) }));
    const owners = async () =>
      await a.query<{ partition: number; owner: string | null }>('SELECT partition, owner FROM log_offsets WHERE group_id = $1 ORDER BY partition', [a.topic('workers')]);
    await eventually(
      async () => {
        const rows = await owners();
        return rows.length === 3 && rows.every((r) => r.owner) && new Set(rows.map((r) => r.owner)).size === 2;
      },
      { timeoutMs: 60_000 },
    );

    const first = Array.from({ length: 60 }, (_, i) => `first-${i}-${randomUUID()}`);
    await a.publish(first.map((v) => ({ topic: 'split', key: v, value: v })));
    await eventually(async () => got.a.length + got.b.length >= 60, { timeoutMs: 60_000 });
    expect([...got.a, ...got.b].map(text).sort()).toEqual([...first].sort()); // each message once
    expect(got.a.length).toBeGreaterThan(0);
    expect(got.b.length).toBeGreaterThan(0);
    const partitionsOf = (ms: DeliveredMessage[]) => new Set(ms.map((m) => m.partition));
    expect([...partitionsOf(got.a)].filter((p) => partitionsOf(got.b).has(p))).toEqual([]); // no partition read by both

    await subA.stop();
    await eventually(async () => new Set((await owners()).map((r) => r.owner)).size === 1 && (await owners()).every((r) => r.owner), { timeoutMs: 60_000 });
    const second = Array.from({ length: 30 }, (_, i) => `second-${i}-${randomUUID()}`);
    await a.publish(second.map((v) => ({ topic: 'split', key: v, value: v })));
    await eventually(async () => second.every((v) => got.b.some((m) => text(m) === v)), { timeoutMs: 60_000 });
    expect(got.a.map(text).filter((v) => v.startsWith('second-'))).toEqual([]);
  });

  test("retention: deletes old messages only below every group's committed offset; forgets groups gone for a retention period", async () => {
    const b = bus();
    await b.ensureTopics(['kept']);
    await b.publish(Array.from({ length: 10 }, (_, i) => ({ topic: 'kept', key: 'k', value: `m${i}` })));
    const got: string[] = [];
    // a live group that handled 6 of 10 messages
    const sub = await b.subscribe({
      groupId: 'slow',
      topics: ['kept'],
      batchSize: 6,
      handleBatch: async (ms, control) => {
        if (got.length >= 6) {
          // holds the rest until stopped, then gives up (never committed)
          while (control.active()) await new Promise((r) => setTimeout(r, 50));
          throw new Error('stopped');
        }
        got.push(...ms.map(text));
      },
    });
    subs.push(sub);
    await eventually(async () => got.length >= 6, { timeoutMs: 60_000 });
    const topic = b.topic('kept');
    const admin = b.admin();
    await eventually(async () => [...(await admin.committedOffsets(b.topic('slow'), [topic])).get(topic)!.values()].includes(6n), { timeoutMs: 30_000 });
    // a group without members that committed 2 long ago (pins nothing after retention)
    await b.query(
      `INSERT INTO log_offsets (group_id, topic, partition, committed, committed_at)
      SELECT $1, topic, partition, 2, now() - interval '30 days' FROM log_partitions WHERE topic = $2`,
      [b.topic('gone'), topic],
    );
    // every message old
    await b.query(`UPDATE log_messages SET created_at = now() - interval '8 days' WHERE topic = $1`, [topic]);

    await b.applyRetention();
    expect(await admin.listGroups()).not.toContain(b.topic('gone'));
    const left = await b.query<{ value: string }>(`SELECT convert_from(value, 'UTF8') AS value FROM log_messages WHERE topic = $1 ORDER BY "offset"`, [topic]);
    expect(left.map((r) => r.value)).toEqual(['m6', 'm7', 'm8', 'm9']);
    const offsets = await admin.topicOffsets(topic);
    expect(offsets.reduce((n, o) => n + Number(o.high - o.low), 0)).toBe(4); // high − low counts what is kept
  });
});
