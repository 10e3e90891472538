/**
 * Dead letters you can work with: `npm run kafka:dlq -- list|replay|purge [--topic <source topic>] [--consumer <name>]`.
 *  - list:   every dead letter still kept (DLQ retention: KAFKA_DLQ_RETENTION_MS, 30 days by default):
 *            where it came from, which consumer gave up, why, and the event's type and id;
 *  - replay: publishes each dead letter (filtered by --consumer / --topic) back to its source topic
 *            with its key, through the normal consumers. Safe: a consumer that already handled the
 *            event id skips it (inbox), and copies apply only newer aggregate versions;
 *  - purge:  deletes the dead letters of the DLQ topics (all of them up to now; after a replay).
 */
import { randomUUID } from 'node:crypto';
import { ALL_TOPICS, KafkaBus, PostgresBus, busKind, dlqOf, readConfig, type DeliveredMessage, type PlatformConfig } from '@crm/kit';

/** The durable bus these commands work on: Kafka, or the event log in Postgres when Kafka is not configured. */
export type LogBus = KafkaBus | PostgresBus;

export function logBus(config: PlatformConfig, clientId: string): LogBus {
  const kind = busKind(config);
  if (kind === 'kafka') return new KafkaBus(config, clientId);
  if (kind === 'postgres') return new PostgresBus(config, clientId);
  throw new Error('neither KAFKA_BROKERS nor POSTGRES_URL is set: the in-process bus keeps no dead letters to work with');
}

export interface DeadLetter {
  dlqTopic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string;
  originTopic: string;
  consumer: string | null;
  error: string | null;
  at: string | null;
  eventType: string | null;
  eventId: string | null;
}

const dlqTopics = (only?: string) => (only ? [dlqOf(only)] : ALL_TOPICS.map(dlqOf));

/** Reads the DLQ topics from their start to their current end, without committing anything. */
export async function readDeadLetters(bus: LogBus, namespace: string, only?: string): Promise<DeadLetter[]> {
  const admin = bus.admin();
  const groupId = `dlq-reader-${randomUUID()}`;
  try {
    const existing = new Set(await admin.listTopics());
    const topics = dlqTopics(only).filter((t) => existing.has(namespace + t));
    let expected = 0;
    for (const t of topics) for (const o of await admin.topicOffsets(namespace + t)) expected += Number(o.high - o.low);
    if (expected === 0) return [];
    const seen: DeliveredMessage[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const sub = await bus.subscribe({
      groupId,
      topics,
      handle: async (m) => {
        seen.push(m);
        if (seen.length >= expected) done();
      },
    });
    await Promise.race([all, new Promise((r) => setTimeout(r, 60_000))]);
    await sub.stop();
    return seen.map((m) => {
      let eventType: string | null = null;
      let eventId: string | null = null;
      try {
        const e = JSON.parse(m.value?.toString() ?? '') as { type?: unknown; id?: unknown };
        eventType = typeof e.type === 'string' ? e.type : null;
        eventId = typeof e.id === 'string' ? e.id : null;
      } catch {
        /* not JSON: shown as is */
      }
      return {
        dlqTopic: m.topic,
        partition: m.partition,
        offset: m.offset,
        key: m.key,
        value: m.value?.toString() ?? '',
        originTopic: m.headers['x-origin-topic'] ?? m.topic.replace(/\.dlq$/, ''),
        consumer: m.headers['x-consumer'] ?? null,
        error: m.headers['x-error'] ?? null,
        at: m.headers['x-dead-lettered-at'] ?? null,
        eventType,
        eventId,
      };
    });
  } finally {
    await admin.deleteGroups([namespace + groupId]).catch(() => undefined);
    await admin.close();
  }
}

/** Publishes the dead letters back to their source topics; returns how many. */
export async function replayDeadLetters(bus: LogBus, letters: DeadLetter[]): Promise<number> {
  const messages = letters.map((l) => ({ topic: l.originTopic, key: l.key ?? '', value: l.value, headers: { 'x-replayed-from': `${l.dlqTopic}/${l.partition}/${l.offset}` } }));
  for (let i = 0; i < messages.length; i += 200) await bus.publish(messages.slice(i, i + 200));
  return messages.length;
}

/** Deletes every dead letter kept now (per partition, up to its current end). */
export async function purgeDeadLetters(bus: LogBus, namespace: string, only?: string): Promise<number> {
  const admin = bus.admin();
  try {
    const existing = new Set(await admin.listTopics());
    let purged = 0;
    for (const t of dlqTopics(only).filter((x) => existing.has(namespace + x))) {
      const offsets = await admin.topicOffsets(namespace + t);
      purged += offsets.reduce((n, o) => n + Number(o.high - o.low), 0);
      await admin.deleteRecords(namespace + t, offsets.map((o) => ({ partition: o.partition, offset: o.high })));
    }
    return purged;
  } finally {
    await admin.close();
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  const command = process.argv[2];
  const config = readConfig();
  const topic = arg('topic');
  const consumer = arg('consumer');
  const bus = logBus(config, 'crm-dlq');
  try {
    const ns = config.KAFKA_NAMESPACE;
    const pick = (letters: DeadLetter[]) => letters.filter((l) => !consumer || l.consumer === consumer);
    if (command === 'list') {
      const letters = pick(await readDeadLetters(bus, ns, topic));
      for (const l of letters) {
        console.log(`${l.dlqTopic}/${l.partition}@${l.offset}  ${l.at ?? ''}  consumer=${l.consumer ?? '?'}  ${l.eventType ?? '(unparsable)'} ${l.eventId ?? ''}\n    ${l.error ?? ''}`);
      }
      console.log(`${letters.length} dead letter(s)`);
    } else if (command === 'replay') {
      const n = await replayDeadLetters(bus, pick(await readDeadLetters(bus, ns, topic)));
      console.log(`${n} dead letter(s) published back to their source topics; \`npm run kafka:dlq -- purge\` removes them from the DLQ`);
    } else if (command === 'purge') {
      console.log(`${await purgeDeadLetters(bus, ns, topic)} dead letter(s) deleted`);
    } else {
      throw new Error('usage: npm run kafka:dlq -- list|replay|purge [--topic <source topic>] [--consumer <name>]');
    }
  } finally {
    await bus.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
