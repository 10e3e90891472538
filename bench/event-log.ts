/**
 * The bus alone, publish → consume (no subgraphs): EVENTS messages of ~600 bytes over 1000 keys,
 * published in batches of 200 (the outbox relay's batch) by one publisher, read by GROUPS consumer
 * groups (handleBatch, 3 partitions at once, as the subgraph consumers do). Prints events/s for the
 * publish alone and until every group has handled everything. The Postgres event log by default;
 * BUS=kafka for Kafka (KAFKA_BROKERS). A throwaway database / namespace, removed afterwards.
 *
 *   POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres npx tsx bench/event-log.ts
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { KafkaBus, PostgresBus, type EventBus } from '@crm/events';
import { readConfig } from '@crm/config';
import { dropDatabase } from '../packages/database/src/db';

const EVENTS = Number(process.env.EVENTS ?? 20_000);
const GROUPS = Number(process.env.GROUPS ?? 2);
const KIND = process.env.BUS ?? 'postgres';

async function main() {
  const id = randomBytes(4).toString('hex');
  const config = readConfig(process.env, {
    DATABASE_PREFIX: `t${id}_`,
    KAFKA_NAMESPACE: `bench-${id}.`,
    KAFKA_TOPIC_PARTITIONS: '3',
    LOG_LEVEL: 'warn',
    ...(KIND === 'postgres' ? { KAFKA_BROKERS: '' } : {}),
  });
  const bus: EventBus = KIND === 'kafka' ? new KafkaBus(config, 'bench') : new PostgresBus(config, 'bench');
  const payload = 'x'.repeat(600);
  try {
    await bus.ensureTopics(['bench']);
    const done: Promise<number>[] = [];
    const subs = [];
    const t0 = performance.now();
    for (let g = 0; g < GROUPS; g++) {
      let seen = 0;
      let finish!: (t: number) => void;
      done.push(new Promise<number>((r) => (finish = r)));
      subs.push(
        await bus.subscribe({
          groupId: `g${g}`,
          topics: ['bench'],
          batchSize: 500,
          partitionsConcurrently: 3,
          handleBatch: async (ms) => {
            seen += ms.length;
            if (seen >= EVENTS) finish(performance.now());
          },
        }),
      );
    }
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ');
    const p0 = performance.now();
    for (let i = 0; i < EVENTS; i += 200) {
      await bus.publish(Array.from({ length: Math.min(200, EVENTS - i) }, (_, j) => ({ topic: 'bench', key: `k${(i + j) % 1000}`, value: `${i + j}:${payload}` })));
    }
    const p1 = performance.now();
    const ends = await Promise.all(done);
    const last = Math.max(...ends);
    console.log(
      `${KIND}: ${EVENTS} events, ${GROUPS} groups; publish ${(EVENTS / ((p1 - p0) / 1000)).toFixed(0)} events/s; publish→all consumed ${(EVENTS / ((last - p0) / 1000)).toFixed(0)} events/s per group (${((last - p0) / 1000).toFixed(1)} s); load before ${load} (t0 ${(p0 - t0).toFixed(0)} ms joining)`,
    );
    for (const s of subs) await s.stop();
  } finally {
    await bus.close();
    if (KIND === 'postgres') await dropDatabase((bus as PostgresBus).url);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
