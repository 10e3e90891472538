/**
 * The EventBus port's contract, run against every adapter: the in-process bus always, Kafka when
 * KAFKA_BROKERS is set (each test in a namespace of its own on that broker), the Postgres event log
 * when POSTGRES_URL is set (a throwaway database for the file, a namespace per test). What the rest of the
 * code relies on: publish and consume with keys and per-key order, batches of one partition in
 * order (a throw redelivers the batch; control.active() turns false on stop), consumer groups,
 * redelivery after a crash before commit, the .dlq topics, ensureTopics/prepare/healthy.
 *
 * The in-process bus is one process with one member per group and one partition per topic, and
 * is not durable across a crash (see memory-bus.ts): the tests of several members of a group and
 * of a killed consumer are Kafka's and the Postgres log's only.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readConfig } from '@crm/config';
import { dropDatabase } from '@crm/database';
import type { DeliveredMessage, EventBus, Subscription } from '../src/bus';
import { dlqOf } from '../src/catalogue';
import { KafkaBus, MemoryBus, PostgresBus } from '../src/buses';
import { eventually } from '@crm/testing';

const BROKERS = process.env.KAFKA_BROKERS;
const POSTGRES = process.env.POSTGRES_URL;
const PARTITIONS = 3;
/** The Postgres log's database for this file (dropped after it). */
const LOG_PREFIX = `t${randomBytes(4).toString('hex')}_`;

interface Adapter {
  name: 'memory' | 'kafka' | 'postgres';
  /** A bus in `ns` (buses made with one ns share its topics and groups, like replicas). */
  bus(ns: string, overrides?: Record<string, string>): EventBus;
}

const adapters: Adapter[] = [
  { name: 'memory', bus: () => new MemoryBus() },
  ...(BROKERS
    ? [
        {
          name: 'kafka' as const,
          bus: (ns: string, overrides: Record<string, string> = {}) =>
            new KafkaBus(readConfig(process.env, { KAFKA_NAMESPACE: ns, KAFKA_TOPIC_PARTITIONS: String(PARTITIONS), LOG_LEVEL: 'silent', ...overrides }), 'contract'),
        },
      ]
    : []),
  ...(POSTGRES
    ? [
        {
          name: 'postgres' as const,
          bus: (ns: string, overrides: Record<string, string> = {}) =>
            new PostgresBus(
              readConfig(process.env, {
                KAFKA_BROKERS: '',
                DATABASE_PREFIX: LOG_PREFIX,
                KAFKA_NAMESPACE: ns,
                KAFKA_TOPIC_PARTITIONS: String(PARTITIONS),
                LOG_LEVEL: 'silent',
                ...overrides,
              }),
              'contract',
            ),
        },
      ]
    : []),
];

afterAll(async () => {
  if (POSTGRES) await dropDatabase(new PostgresBus(readConfig(process.env, { KAFKA_BROKERS: '', DATABASE_PREFIX: LOG_PREFIX }), 'contract').url);
});

/**
 * key → [partition of 3, partition of 12] by Kafka's Java DefaultPartitioner: toPositive(murmur2(key)) % n
 * (computed with kafkajs 2.2.4's default partitioner, which reproduces the Java test vectors of
 * Utils.murmur2, e.g. murmur2("21") = -973932308, murmur2("foobar") = -790332482).
 */
const MURMUR2_PARTITIONS: Record<string, [number, number]> = {
  '21': [0, 0],
  foobar: [0, 6],
  abc: [0, 3],
  'a-little-bit-long-string': [2, 8],
  lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: [2, 5],
  '3f0e1d0c-8a4b-4c2e-9f6a-0b1c2d3e4f50': [2, 5],
  '7c9e6679-7425-40de-944b-e07fc1f90ae7': [2, 5],
  'f47ac10b-58cc-4372-a567-0e02b2c3d479': [2, 2],
  '00000000-0000-0000-0000-000000000000': [0, 9],
  'customer-42': [0, 9],
  'ü-ñ-日本': [1, 4],
};

const text = (m: DeliveredMessage) => m.value?.toString() ?? '';

describe.each(adapters)('EventBus contract: $name', ({ name, bus: make }) => {
  jest.setTimeout(180_000);
  /** Several members of a group, crashes, partitioning, an unreachable server: not the in-process bus. */
  const kafkaOnly = name === 'memory' ? test.skip : test;
  let ns: string;
  let opened: EventBus[];
  let subs: Subscription[];
  const bus = (overrides?: Record<string, string>) => {
    const b = make(ns, overrides);
    opened.push(b);
    return b;
  };
  const subscribe = async (b: EventBus, options: Parameters<EventBus['subscribe']>[0]) => {
    const s = await b.subscribe(options);
    subs.push(s);
    return s;
  };

  beforeEach(() => {
    ns = `contract-${randomUUID().slice(0, 8)}.`;
    opened = [];
    subs = [];
  });
  afterEach(async () => {
    await Promise.all(subs.map((s) => s.stop().catch(() => undefined)));
    await Promise.all(opened.map((b) => b.close()));
  });

  test('publish and consume: keys, headers and per-key order; one key stays on one partition', async () => {
    const b = bus();
    expect(await b.prepare(['orders'])).toBe('ready');
    const seen: DeliveredMessage[] = [];
    await subscribe(b, { groupId: 'g', topics: ['orders'], handle: async (m) => void seen.push(m) });
    const keys = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
    for (let round = 0; round < 4; round++) {
      await b.publish(keys.flatMap((key) => [0, 1, 2, 3, 4].map((i) => ({ topic: 'orders', key, value: `${key}:${round * 5 + i}`, headers: { 'x-round': String(round) } }))));
    }
    await eventually(async () => seen.length >= 100, { timeoutMs: 60_000 });
    expect(seen).toHaveLength(100);
    for (const key of keys) {
      const mine = seen.filter((m) => m.key === key);
      expect(mine.map(text)).toEqual(Array.from({ length: 20 }, (_, i) => `${key}:${i}`));
      expect(new Set(mine.map((m) => m.partition)).size).toBe(1);
      expect(mine.map((m) => m.headers['x-round'])).toEqual(Array.from({ length: 20 }, (_, i) => String(Math.floor(i / 5))));
      expect(mine.every((m) => m.topic === 'orders' && Buffer.isBuffer(m.value))).toBe(true);
      // offsets grow within a partition
      const offsets = mine.map((m) => BigInt(m.offset));
      expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)).toBe(true);
    }
    if (name !== 'memory') expect(new Set(seen.map((m) => m.partition)).size).toBeGreaterThan(1);
    expect(await b.healthy()).toBe(true);
  });

  test('publishes at the same time (relay, dead letters of several consumers) all arrive', async () => {
    const b = bus();
    await b.ensureTopics(['together']);
    const seen: string[] = [];
    await subscribe(b, { groupId: 'g', topics: ['together'], handle: async (m) => void seen.push(text(m)) });
    await Promise.all(Array.from({ length: 20 }, (_, i) => b.publish([{ topic: 'together', key: 'same-key', value: String(i) }])));
    await eventually(async () => seen.length >= 20, { timeoutMs: 60_000 });
    expect([...seen].sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(seen.map(Number)).toEqual(Array.from({ length: 20 }, (_, i) => i)); // and in the order they were called
  });

  test('batches: consecutive messages of one partition, at most batchSize, in order; active() while handling', async () => {
    const b = bus();
    await b.ensureTopics(['batches']);
    const batches: DeliveredMessage[][] = [];
    await b.publish(Array.from({ length: 60 }, (_, i) => ({ topic: 'batches', key: `k${i % 6}`, value: String(i) })));
    await subscribe(b, {
      groupId: 'g',
      topics: ['batches'],
      batchSize: 7,
      partitionsConcurrently: PARTITIONS,
      handleBatch: async (messages, control) => {
        expect(control.active()).toBe(true);
        batches.push(messages);
      },
    });
    await eventually(async () => batches.flat().length >= 60, { timeoutMs: 60_000 });
    expect(batches.flat()).toHaveLength(60);
    for (const batch of batches) {
      expect(batch.length).toBeGreaterThan(0);
      expect(batch.length).toBeLessThanOrEqual(7);
      expect(new Set(batch.map((m) => m.partition)).size).toBe(1);
      for (let i = 1; i < batch.length; i++) expect(BigInt(batch[i]!.offset)).toBe(BigInt(batch[i - 1]!.offset) + 1n);
    }
    for (let k = 0; k < 6; k++) {
      const values = batches
        .flat()
        .filter((m) => m.key === `k${k}`)
        .map((m) => Number(text(m)));
      expect(values).toEqual(Array.from({ length: 10 }, (_, i) => k + 6 * i));
    }
  });

  test('lingerMs: a short batch waits, and what its partition receives meanwhile is handled with it, in order', async () => {
    const b = bus();
    await b.ensureTopics(['linger']);
    const batches: string[][] = [];
    await subscribe(b, { groupId: 'g', topics: ['linger'], batchSize: 10, lingerMs: 2000, handleBatch: async (messages) => void batches.push(messages.map(text)) });
    await b.publish([{ topic: 'linger', key: 'k', value: '1' }]);
    await new Promise((r) => setTimeout(r, 300));
    await b.publish([{ topic: 'linger', key: 'k', value: '2' }]);
    await b.publish([{ topic: 'linger', key: 'k', value: '3' }]);
    await eventually(async () => batches.flat().length >= 3, { timeoutMs: 60_000 });
    // Without the linger, '1' is handled alone as soon as it arrives.
    expect(batches).toEqual([['1', '2', '3']]);
  });

  test('a batch handler that throws gets the same batch again; nothing after it is skipped', async () => {
    const b = bus();
    await b.ensureTopics(['retry']);
    await b.publish(Array.from({ length: 10 }, (_, i) => ({ topic: 'retry', key: 'one-key', value: String(i) })));
    const attempts: string[][] = [];
    const handled: string[] = [];
    await subscribe(b, {
      groupId: 'g',
      topics: ['retry'],
      batchSize: 4,
      handleBatch: async (messages) => {
        attempts.push(messages.map(text));
        if (attempts.length === 1) throw new Error('first attempt fails');
        handled.push(...messages.map(text));
      },
    });
    await eventually(async () => handled.length >= 10, { timeoutMs: 60_000 });
    expect(handled).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(attempts[1]!.slice(0, attempts[0]!.length)).toEqual(attempts[0]); // the failed batch came again from its start
  });

  test('stopping a subscription turns control.active() false for the batch in hand, and stop() waits for it', async () => {
    const b = bus();
    await b.ensureTopics(['stopping']);
    let inHand!: () => void;
    const started = new Promise<void>((r) => (inHand = r));
    let sawInactive = false;
    const sub = await subscribe(b, {
      groupId: 'g',
      topics: ['stopping'],
      handleBatch: async (_messages, control) => {
        inHand();
        while (control.active()) await new Promise((r) => setTimeout(r, 20));
        sawInactive = true;
      },
    });
    await b.publish([{ topic: 'stopping', key: 'k', value: 'x' }]);
    await started;
    expect(sub.active()).toBe(true);
    await sub.stop();
    expect(sawInactive).toBe(true);
    expect(sub.active()).toBe(false);
  });

  test('a committed group resumes after its last handled message; a second group sees everything', async () => {
    const b = bus();
    await b.ensureTopics(['resume']);
    const first: string[] = [];
    const one = await subscribe(b, { groupId: 'g1', topics: ['resume'], handle: async (m) => void first.push(text(m)) });
    await b.publish(Array.from({ length: 5 }, (_, i) => ({ topic: 'resume', key: 'k', value: `a${i}` })));
    await eventually(async () => first.length >= 5, { timeoutMs: 60_000 });
    await one.stop();
    await b.publish(Array.from({ length: 5 }, (_, i) => ({ topic: 'resume', key: 'k', value: `b${i}` })));
    const again: string[] = [];
    const everything: string[] = [];
    await subscribe(b, { groupId: 'g1', topics: ['resume'], handle: async (m) => void again.push(text(m)) });
    await subscribe(b, { groupId: 'g2', topics: ['resume'], handle: async (m) => void everything.push(text(m)) });
    await eventually(async () => again.length >= 5 && everything.length >= 10, { timeoutMs: 60_000 });
    expect(first).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    expect(again).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    expect(everything).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3', 'b4']);
  });

  test('fromLatest: a new group starts after what was published before it joined', async () => {
    const b = bus();
    await b.ensureTopics(['live']);
    await b.publish([{ topic: 'live', key: 'k', value: 'old' }]);
    const seen: string[] = [];
    await subscribe(b, { groupId: 'live-1', topics: ['live'], fromLatest: true, handle: async (m) => void seen.push(text(m)) });
    // joining is in the background on Kafka: publish until the group sees one
    await eventually(
      async () => {
        await b.publish([{ topic: 'live', key: 'k', value: 'new' }]);
        return seen.length > 0;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(seen).not.toContain('old');
  });

  test('a replayed dead letter (x-replay-for) reaches only the group it names; the others skip it and read on', async () => {
    const b = bus();
    await b.ensureTopics(['redrive']);
    const seen: Record<string, string[]> = { failed: [], other: [] };
    await subscribe(b, { groupId: 'failed', topics: ['redrive'], handle: async (m) => void seen.failed!.push(text(m)) });
    await subscribe(b, { groupId: 'other', topics: ['redrive'], batchSize: 10, handleBatch: async (ms) => void seen.other!.push(...ms.map(text)) });
    await b.publish([
      { topic: 'redrive', key: 'k', value: 'replayed', headers: { 'x-replay-for': 'failed', 'x-replays': '1' } },
      { topic: 'redrive', key: 'k', value: 'after' },
    ]);
    await eventually(async () => seen.failed!.length >= 2 && seen.other!.length >= 1, { timeoutMs: 60_000 });
    expect(seen).toEqual({ failed: ['replayed', 'after'], other: ['after'] });
  });

  kafkaOnly('a committed offset out of range (records deleted by retention) is reset by the offset-reset policy instead of failing for ever', async () => {
    const b = bus() as KafkaBus;
    await b.ensureTopics(['gone']);
    await b.publish(Array.from({ length: 10 }, (_, i) => ({ topic: 'gone', key: 'k', value: `a${i}` })));
    const first: string[] = [];
    const one = await subscribe(b, { groupId: 'late', topics: ['gone'], handle: async (m) => void first.push(text(m)) });
    await eventually(async () => first.length >= 10, { timeoutMs: 60_000 });
    await one.stop();
    await b.publish(Array.from({ length: 10 }, (_, i) => ({ topic: 'gone', key: 'k', value: `b${i}` })));
    // retention deletes past the group's committed offset (10): the next fetch is out of range
    const admin = b.admin();
    try {
      const physical = `${ns}gone`;
      const partition = (await admin.topicOffsets(physical)).find((o) => o.high === 20n)!.partition;
      await admin.deleteRecords(physical, [{ partition, offset: 15n }]);
    } finally {
      await admin.close();
    }
    const again: string[] = [];
    await subscribe(b, { groupId: 'late', topics: ['gone'], handle: async (m) => void again.push(text(m)) });
    await eventually(async () => again.length >= 5, { timeoutMs: 60_000 });
    expect(again).toEqual(['b5', 'b6', 'b7', 'b8', 'b9']); // earliest kept (the default policy), nothing kept skipped
  });

  test('dead letters: ensureTopics provisions <topic>.dlq beside each topic; a dead letter keeps key and headers', async () => {
    const b = bus();
    await b.ensureTopics(['source']);
    await b.ensureTopics(['source']); // again: nothing to do, no error
    const letters: DeliveredMessage[] = [];
    await subscribe(b, { groupId: 'dlq-reader', topics: [dlqOf('source')], handle: async (m) => void letters.push(m) });
    await b.publish([{ topic: dlqOf('source'), key: 'agg-1', value: '{"broken":true}', headers: { 'x-error': 'boom', 'x-origin-topic': 'source', 'x-origin-offset': '7' } }]);
    await eventually(async () => letters.length >= 1, { timeoutMs: 60_000 });
    expect(letters[0]).toMatchObject({ topic: 'source.dlq', key: 'agg-1', headers: { 'x-error': 'boom', 'x-origin-topic': 'source', 'x-origin-offset': '7' } });
    expect(text(letters[0]!)).toBe('{"broken":true}');
    if (b instanceof KafkaBus || b instanceof PostgresBus) {
      // same partitions as the source (a key keeps its partition), the DLQ's own retention
      const config = readConfig(process.env);
      const info = await b.describeTopics(['source', dlqOf('source')]);
      expect(info).toEqual([
        { topic: 'source', partitions: PARTITIONS, retentionMs: config.KAFKA_TOPIC_RETENTION_MS },
        { topic: 'source.dlq', partitions: PARTITIONS, retentionMs: config.KAFKA_DLQ_RETENTION_MS },
      ]);
    }
  });

  kafkaOnly("keys land on the partitions of Java's murmur2 partitioner (the same as before the client swap)", async () => {
    for (const [count, column] of [
      [PARTITIONS, 0],
      [12, 1],
    ] as const) {
      const b = bus({ KAFKA_TOPIC_PARTITIONS: String(count) });
      await b.ensureTopics([`keys-${count}`]);
      const seen = new Map<string, number>();
      await subscribe(b, { groupId: `g-${count}`, topics: [`keys-${count}`], handle: async (m) => void seen.set(m.key!, m.partition) });
      await b.publish(Object.keys(MURMUR2_PARTITIONS).map((key) => ({ topic: `keys-${count}`, key, value: key })));
      await eventually(async () => seen.size === Object.keys(MURMUR2_PARTITIONS).length, { timeoutMs: 60_000 }).catch((err) => {
        throw new Error(`${count} partitions: ${JSON.stringify([...seen])}: ${err}`);
      });
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(Object.entries(MURMUR2_PARTITIONS).map(([k, v]) => [k, v[column]])));
    }
  });

  kafkaOnly('consumer groups: two members share the partitions, each message reaches one of them', async () => {
    const a = bus();
    const b = bus();
    await a.ensureTopics(['shared']);
    const got = new Map<string, string[]>([
      ['a', []],
      ['b', []],
    ]);
    await subscribe(a, { groupId: 'workers', topics: ['shared'], handle: async (m) => void got.get('a')!.push(text(m)) });
    await subscribe(b, { groupId: 'workers', topics: ['shared'], handle: async (m) => void got.get('b')!.push(text(m)) });
    const published: string[] = [];
    // publish over many keys until both members have work (a rebalance may still be settling)
    await eventually(
      async () => {
        const batch = Array.from({ length: 12 }, () => randomUUID());
        await a.publish(batch.map((v) => ({ topic: 'shared', key: v, value: v })));
        published.push(...batch);
        return got.get('a')!.length > 0 && got.get('b')!.length > 0;
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    await eventually(async () => published.every((v) => got.get('a')!.includes(v) || got.get('b')!.includes(v)), { timeoutMs: 60_000 });
  });

  kafkaOnly('redelivery after a crash: messages a consumer got but never committed go to the next member', async () => {
    const b = bus();
    await b.ensureTopics(['crash']);
    await b.publish([{ topic: 'crash', key: 'k', value: 'must-not-be-lost' }]);
    // tsx as a loader in this one process (its CLI would run the script in a child that SIGKILL misses)
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/crash-consumer.ts')], {
      env: { ...process.env, KAFKA_NAMESPACE: ns, KAFKA_TOPIC_PARTITIONS: String(PARTITIONS), GROUP: 'crashing', TOPIC: 'crash', BUS: name, DATABASE_PREFIX: LOG_PREFIX },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(async () => out.includes('must-not-be-lost'), { timeoutMs: 90_000 });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    const again: string[] = [];
    await subscribe(b, { groupId: 'crashing', topics: ['crash'], handleBatch: async (ms) => void again.push(...ms.map(text)) });
    // the dead member's session has to expire first (sessionTimeout)
    await eventually(async () => again.includes('must-not-be-lost'), { timeoutMs: 120_000, intervalMs: 500 });
  });

  kafkaOnly('an unreachable broker: prepare() says degraded at once, publish fails, healthy() is false', async () => {
    const b = bus(name === 'kafka' ? { KAFKA_BROKERS: '127.0.0.1:1' } : { POSTGRES_URL: 'postgresql://postgres@127.0.0.1:1/postgres' });
    expect(await b.prepare(['nowhere'])).toBe('degraded');
    await expect(b.publish([{ topic: 'nowhere', key: 'k', value: 'v' }])).rejects.toThrow();
    expect(await b.healthy()).toBe(false);
    await expect((b as KafkaBus | PostgresBus).ensureTopics(['nowhere'], 2_000)).rejects.toThrow();
  });
});
