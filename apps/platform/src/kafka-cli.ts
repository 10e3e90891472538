/**
 * `npm run kafka:topics` provisions every topic and its .dlq (partitions and retention from the
 * config); `npm run kafka:status` shows topics, consumer-group lag and dead-letter counts at a look.
 */
import { ALL_TOPICS, KafkaBus, dlqOf, readConfig } from '@crm/kit';

async function main() {
  const command = process.argv[2];
  const config = readConfig();
  if (config.KAFKA_BROKERS.length === 0) throw new Error('KAFKA_BROKERS is not set');
  const bus = new KafkaBus(config, 'crm-admin');
  try {
    if (command === 'topics') {
      await bus.ensureTopics(ALL_TOPICS);
      console.log(`topics ready: ${ALL_TOPICS.flatMap((t) => [t, dlqOf(t)]).map((t) => config.KAFKA_NAMESPACE + t).join(', ')}`);
    } else if (command === 'status') {
      console.log(await kafkaStatus(bus, config.KAFKA_NAMESPACE));
    } else {
      throw new Error('usage: kafka-cli topics|status');
    }
  } finally {
    await bus.close();
  }
}

export async function kafkaStatus(bus: KafkaBus, namespace: string): Promise<string> {
  const admin = bus.admin();
  await admin.connect();
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
      const offsets = await admin.fetchTopicOffsets(topic);
      ends.set(topic, new Map(offsets.map((o) => [o.partition, BigInt(o.high)])));
      const count = offsets.reduce((n, o) => n + BigInt(o.high) - BigInt(o.low), 0n);
      lines.push(`${topic.padEnd(40)} ${String(offsets.length).padStart(10)}  ${String(count).padStart(8)}${topic.endsWith('.dlq') && count > 0n ? '  ← dead letters' : ''}`);
    }
    lines.push('', 'consumer group                          topic                          lag');
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(namespace)).sort();
    for (const groupId of groups) {
      const committed = await admin.fetchOffsets({ groupId, topics: [...ends.keys()] });
      for (const t of committed) {
        const high = ends.get(t.topic);
        if (!high) continue;
        const lag = t.partitions.reduce((n, p) => {
          const end = high.get(p.partition) ?? 0n;
          const at = p.offset === '-1' ? 0n : BigInt(p.offset);
          return n + (end > at ? end - at : 0n);
        }, 0n);
        if (t.partitions.some((p) => p.offset !== '-1')) lines.push(`${groupId.padEnd(40)} ${t.topic.padEnd(30)} ${lag}`);
      }
    }
    return lines.join('\n');
  } finally {
    await admin.disconnect();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
