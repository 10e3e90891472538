/**
 * `npm run kafka:topics` provisions every topic and its .dlq (partitions and retention from the
 * config); `npm run kafka:status` shows topics, consumer-group lag and dead-letter counts at a look.
 */
import { ALL_TOPICS, dlqOf } from '@crm/events';
import { readConfig } from '@crm/config';
import { logBus, type LogBus } from './kafka-dlq';

async function main() {
  const command = process.argv[2];
  const config = readConfig();
  const bus = logBus(config, 'crm-admin');
  try {
    if (command === 'topics') {
      await bus.ensureTopics(ALL_TOPICS);
      console.log(
        `topics ready: ${ALL_TOPICS.flatMap((t) => [t, dlqOf(t)])
          .map((t) => config.KAFKA_NAMESPACE + t)
          .join(', ')}`,
      );
    } else if (command === 'status') {
      console.log(await kafkaStatus(bus, config.KAFKA_NAMESPACE));
    } else {
      throw new Error('usage: kafka-cli topics|status');
    }
  } finally {
    await bus.close();
  }
}

export async function kafkaStatus(bus: LogBus, namespace: string): Promise<string> {
  const admin = bus.admin();
  try {
    const wanted = ALL_TOPICS.flatMap((t) => [t, dlqOf(t)]).map((t) => namespace + t);
    const existing = new Set(await admin.listTopics());
    const lines: string[] = ['topic                                   partitions  messages  (dlq = dead letters)'];
    const ends = new Map<string, Map<number, bigint>>();
    for (const topic of wanted) {
      if (!existing.has(topic)) {
        lines.push(`${topic.padEnd(40)} MISSING (run npm run kafka:topics)`);
        continue;
      }
      const offsets = await admin.topicOffsets(topic);
      ends.set(topic, new Map(offsets.map((o) => [o.partition, o.high])));
      const count = offsets.reduce((n, o) => n + o.high - o.low, 0n);
      lines.push(`${topic.padEnd(40)} ${String(offsets.length).padStart(10)}  ${String(count).padStart(8)}${topic.endsWith('.dlq') && count > 0n ? '  ← dead letters' : ''}`);
    }
    lines.push('', 'consumer group                          topic                          lag');
    const groups = (await admin.listGroups()).filter((g) => g.startsWith(namespace)).sort();
    for (const groupId of groups) {
      const committed = await admin.committedOffsets(groupId, [...ends.keys()]);
      for (const [topic, partitions] of committed) {
        const high = ends.get(topic)!;
        if (![...partitions.values()].some((o) => o >= 0n)) continue;
        const lag = [...high].reduce((n, [partition, end]) => {
          const at = partitions.get(partition) ?? -1n;
          const from = at < 0n ? 0n : at;
          return n + (end > from ? end - from : 0n);
        }, 0n);
        lines.push(`${groupId.padEnd(40)} ${topic.padEnd(30)} ${lag}`);
      }
    }
    return lines.join('\n');
  } finally {
    await admin.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
