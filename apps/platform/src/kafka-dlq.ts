/**
 * Dead letters and parked outbox rows you can work with:
 *   `npm run kafka:dlq -- list|replay|purge [--topic <source topic>] [--consumer <name>] [--max-replays <n>]`
 *   `npm run kafka:dlq -- parked|unpark <subgraph> [--id <outbox row id>]`
 *  - list:   every dead letter still kept (DLQ retention: KAFKA_DLQ_RETENTION_MS, 30 days by default):
 *            where it came from, which consumer (group) gave up, why, how many replays it had, and
 *            the event's type and id;
 *  - replay: publishes each dead letter (filtered by --consumer / --topic) back to its source topic
 *            with its key, addressed to the ONE consumer group that failed it (header x-replay-for:
 *            every other group drops it unseen, so no group that handled the event sees it twice)
 *            and with its replay count + 1 (x-replays; a letter that fails again keeps the count).
 *            Letters replayed --max-replays times (3 by default) are left for a person to look at.
 *            Safe: the group's inbox skips an event id it already handled, and every copy applies
 *            only a newer aggregate version, so a replayed old event rolls nothing back;
 *  - purge:  deletes the dead letters it reads now (per partition, up to the last one read): a
 *            letter that arrives while it runs is kept. Kafka deletes a prefix of a partition, so
 *            --consumer cannot narrow it (refused);
 *  - parked / unpark: the outbox rows of a subgraph the relay parked as unpublishable (failed_at:
 *            the broker refused them for good, e.g. too large or CORRUPT_MESSAGE); unpark clears
 *            failed_at (all, or --id) so the relay sends them again, in their original order.
 */
import { randomUUID } from 'node:crypto';
import { ALL_TOPICS, KafkaBus, PostgresBus, REPLAY_FOR_HEADER, REPLAYS_HEADER, busKind, consumerGroup, dlqOf, type DeliveredMessage } from '@crm/events';
import { createLogger } from '@crm/telemetry';
import { openSubgraphDatabase } from '@crm/runtime';
import { readConfig, type PlatformConfig } from '@crm/config';
import { subgraphByName } from './subgraphs';

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
  /** The consumer group that failed it (where a replay goes). */
  group: string | null;
  /** How many times it was replayed already. */
  replays: number;
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
    // at most 60 s for what was counted; the timer is cleared either way (it would hold the process open for the rest)
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, 60_000)))]).finally(() => clearTimeout(timer));
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
        group: m.headers['x-group'] ?? (m.headers['x-consumer'] ? consumerGroup(m.headers['x-consumer']) : null),
        replays: Number(m.headers[REPLAYS_HEADER] ?? 0) || 0,
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

/**
 * Publishes the dead letters back to their source topics, each addressed to the group that failed
 * it, with its replay count + 1; returns how many. Letters without a known group (nobody to
 * address) and letters already replayed `maxReplays` times are not replayed.
 */
export async function replayDeadLetters(bus: LogBus, letters: DeadLetter[], maxReplays = Infinity): Promise<number> {
  const messages = letters
    .filter((l) => l.group !== null && l.replays < maxReplays)
    .map((l) => ({
      topic: l.originTopic,
      key: l.key ?? '',
      value: l.value,
      headers: { 'x-replayed-from': `${l.dlqTopic}/${l.partition}/${l.offset}`, [REPLAY_FOR_HEADER]: l.group!, [REPLAYS_HEADER]: String(l.replays + 1) },
    }));
  for (let i = 0; i < messages.length; i += 200) await bus.publish(messages.slice(i, i + 200));
  return messages.length;
}

/**
 * Deletes the dead letters `read` (per DLQ partition, every record up to the last one read: a
 * letter that arrived after the read is kept); returns how many records were deleted.
 */
export async function purgeDeadLetters(bus: LogBus, namespace: string, read: DeadLetter[]): Promise<number> {
  const upTo = new Map<string, Map<number, bigint>>();
  for (const l of read) {
    const parts = upTo.get(l.dlqTopic) ?? new Map<number, bigint>();
    upTo.set(l.dlqTopic, parts);
    const next = BigInt(l.offset) + 1n;
    if ((parts.get(l.partition) ?? -1n) < next) parts.set(l.partition, next);
  }
  const admin = bus.admin();
  try {
    let purged = 0;
    for (const [topic, parts] of upTo) {
      const low = new Map((await admin.topicOffsets(namespace + topic)).map((o) => [o.partition, o.low]));
      const todo = [...parts].filter(([p, offset]) => offset > (low.get(p) ?? 0n));
      purged += todo.reduce((n, [p, offset]) => n + Number(offset - (low.get(p) ?? 0n)), 0);
      if (todo.length > 0)
        await admin.deleteRecords(
          namespace + topic,
          todo.map(([partition, offset]) => ({ partition, offset })),
        );
    }
    return purged;
  } finally {
    await admin.close();
  }
}

interface ParkedRow {
  id: string;
  topic: string;
  type: string;
  key: string;
  failed_at: Date;
  attempts: number;
  last_error: string | null;
}

/** A subgraph's parked outbox rows (the relay refused them for good), oldest first. */
export async function parkedRows(subgraph: string, config = readConfig()): Promise<ParkedRow[]> {
  const db = await openSubgraphDatabase(subgraphByName(subgraph), config, createLogger(`dlq:${subgraph}`, 'warn'));
  try {
    return await db.orm.em
      .fork()
      .execute<ParkedRow[]>('SELECT id, topic, type, key, failed_at, attempts, last_error FROM outbox WHERE failed_at IS NOT NULL AND sent_at IS NULL ORDER BY seq');
  } finally {
    await db.close();
  }
}

/** Un-parks a subgraph's parked outbox rows (all, or one id): the relay sends them again, in `seq` order. Returns how many. */
export async function unparkRows(subgraph: string, id?: string, config = readConfig()): Promise<number> {
  const db = await openSubgraphDatabase(subgraphByName(subgraph), config, createLogger(`dlq:${subgraph}`, 'warn'));
  try {
    const rows = await db.orm.em
      .fork()
      .execute<{ id: string }[]>(
        `UPDATE outbox SET failed_at = NULL, attempts = 0 WHERE failed_at IS NOT NULL AND sent_at IS NULL${id ? ' AND id = ?' : ''} RETURNING id`,
        id ? [id] : [],
      );
    return rows.length;
  } finally {
    await db.close();
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  const command = process.argv[2];
  const config = readConfig();
  const usage = 'usage: npm run kafka:dlq -- list|replay|purge [--topic <source topic>] [--consumer <name>] [--max-replays <n>] | parked|unpark <subgraph> [--id <outbox row id>]';
  if (command === 'parked' || command === 'unpark') {
    const subgraph = process.argv[3];
    if (!subgraph || subgraph.startsWith('--')) throw new Error(usage);
    if (command === 'parked') {
      const rows = await parkedRows(subgraph, config);
      for (const r of rows) console.log(`${r.id}  ${r.type} ${r.key}  parked ${new Date(r.failed_at).toISOString()} after ${r.attempts} attempt(s)\n    ${r.last_error ?? ''}`);
      console.log(`${rows.length} parked outbox row(s) in ${subgraph}`);
    } else {
      console.log(`${await unparkRows(subgraph, arg('id'), config)} outbox row(s) of ${subgraph} un-parked; the relay sends them again`);
    }
    return;
  }
  const topic = arg('topic');
  const consumer = arg('consumer');
  const maxReplays = Number(arg('max-replays') ?? 3);
  const bus = logBus(config, 'crm-dlq');
  try {
    const ns = config.KAFKA_NAMESPACE;
    const pick = (letters: DeadLetter[]) => letters.filter((l) => !consumer || l.consumer === consumer);
    if (command === 'list') {
      const letters = pick(await readDeadLetters(bus, ns, topic));
      for (const l of letters) {
        console.log(
          `${l.dlqTopic}/${l.partition}@${l.offset}  ${l.at ?? ''}  consumer=${l.consumer ?? '?'} group=${l.group ?? '?'} replays=${l.replays}  ${l.eventType ?? '(unparsable)'} ${l.eventId ?? ''}\n    ${l.error ?? ''}`,
        );
      }
      console.log(`${letters.length} dead letter(s)`);
    } else if (command === 'replay') {
      const letters = pick(await readDeadLetters(bus, ns, topic));
      const n = await replayDeadLetters(bus, letters, maxReplays);
      const held = letters.filter((l) => l.group !== null && l.replays >= maxReplays).length;
      console.log(
        `${n} dead letter(s) published back to their source topics, each for the group that failed it${held ? `; ${held} left (already replayed ${maxReplays} times: --max-replays)` : ''}; \`npm run kafka:dlq -- purge\` removes them from the DLQ`,
      );
    } else if (command === 'purge') {
      if (consumer) throw new Error('purge deletes every letter read from a DLQ partition, whoever failed it: run it without --consumer');
      console.log(`${await purgeDeadLetters(bus, ns, await readDeadLetters(bus, ns, topic))} dead letter(s) deleted (up to the last one read)`);
    } else {
      throw new Error(usage);
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
