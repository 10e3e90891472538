/**
 * Runs once before the test suites (jest globalSetup). Without POSTGRES_URL, one embedded Postgres
 * (the `npm start` default, kit embedded-postgres.ts) in a temporary directory serves the whole
 * run: its URL goes into POSTGRES_URL for every test worker, each suite makes and drops its own
 * throwaway databases on it as on any Postgres, and globalTeardown stops and removes it.
 * With a real broker (KAFKA_BROKERS), wait
 * until it is fully usable — a topic with leaders, a message produced and read back by a consumer
 * group (so the offsets topic and a group coordinator exist) — before suites race to use it. A
 * brand-new KRaft broker answers its port seconds before all of that works.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaBus } from '@crm/events';
import { readConfig } from '@crm/config';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '@crm/database';

// read by jest-global-teardown.ts (globalSetup and globalTeardown share this process)
const EMBEDDED = Symbol.for('crm.test.embeddedPostgres');
interface Holder {
  [EMBEDDED]?: { server: EmbeddedPostgres; dir: string };
}

export default async function globalSetup(): Promise<void> {
  await startTestPostgres();
  await waitForBroker();
}

async function startTestPostgres(): Promise<void> {
  if (process.env.POSTGRES_URL) return;
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'crm-test-pg-'));
  chmodSync(dir, 0o755); // as root, the server's user must pass through (the cluster inside stays private)
  const server = await startEmbeddedPostgres({ dir: join(dir, 'postgres') });
  (globalThis as Holder)[EMBEDDED] = { server, dir };
  process.env.POSTGRES_URL = server.url;
  console.log(`\nEmbedded Postgres for the tests on port ${server.port} (${Date.now() - started} ms)`);
}

async function waitForBroker(): Promise<void> {
  if (!process.env.KAFKA_BROKERS) return;
  const started = Date.now();
  const config = readConfig(process.env, { KAFKA_NAMESPACE: 'ci-warmup.', KAFKA_TOPIC_PARTITIONS: '1', LOG_LEVEL: 'silent' });
  const bus = new KafkaBus(config, 'ci-warmup');
  const marker = randomUUID();
  try {
    await bus.ensureTopics(['warmup'], 120_000);
    let seen!: () => void;
    const read = new Promise<void>((resolve) => (seen = resolve));
    const sub = await bus.subscribe({
      groupId: `warmup-${marker}`,
      topics: ['warmup'],
      handle: async (m) => {
        if (m.value?.toString() === marker) seen();
      },
    });
    const deadline = Date.now() + 120_000;
    const timedOut = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('Kafka is not usable after 120 s')), 120_000).unref());
    const publish = async () => {
      for (;;) {
        try {
          return await bus.publish([{ topic: 'warmup', key: marker, value: marker }]);
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    await Promise.race([publish().then(() => read), timedOut]);
    await sub.stop();
    console.log(`\nKafka ready for the tests (${Date.now() - started} ms)`);
  } finally {
    await bus.close();
  }
}
