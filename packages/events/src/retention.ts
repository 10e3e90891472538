/**
 * Retention of every growing event table, run by every subgraph as a job, in chunks so no
 * statement holds many locks:
 *  - outbox: sent rows older than OUTBOX_RETENTION_MS; parked rows (failed_at: the broker refused
 *    them for good) older than KAFKA_DLQ_RETENTION_MS, as long as a dead letter is kept (until
 *    then `npm run kafka:dlq -- parked|unpark <subgraph>` shows and re-sends them); unsent rows never;
 *  - inbox: rows older than INBOX_RETENTION_MS. Keep it above the Kafka retention plus the DLQ
 *    replay window: a redelivered or replayed event whose inbox row is gone is handled again
 *    (copies still refuse it — they apply only newer aggregate versions — but a side effect such as
 *    a notification would repeat);
 *  - aggregate_versions: counters untouched for INBOX_RETENTION_MS. The largest version deleted is
 *    kept in aggregate_versions_floor and a new counter starts above it (kit-migration.ts), so an
 *    aggregate's versions never go down and no copy meets an old version number again.
 */
import type { PlatformConfig } from '@crm/config';
import type { EventJob, EventRuntime } from './event-runtime';

const CHUNK = 5000;

export interface Pruned {
  outbox: number;
  parked: number;
  inbox: number;
  versions: number;
}

export async function pruneEventTables(runtime: EventRuntime): Promise<Pruned> {
  const em = runtime.fork();
  const { OUTBOX_RETENTION_MS, INBOX_RETENTION_MS, KAFKA_DLQ_RETENTION_MS } = runtime.config;
  const prune = async (sql: string, ageMs: number) => {
    let total = 0;
    for (;;) {
      const rows = await em.execute<{ n: string }[]>(`WITH gone AS (${sql}) SELECT count(*) AS n FROM gone`, [ageMs / 1000, CHUNK]);
      const n = Number(rows[0]?.n ?? 0);
      total += n;
      if (n < CHUNK) return total;
    }
  };
  const outbox = await prune(`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => ?) LIMIT ?) RETURNING 1`, OUTBOX_RETENTION_MS);
  const parked = await prune(
    `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at < now() - make_interval(secs => ?) LIMIT ?) RETURNING 1`,
    KAFKA_DLQ_RETENTION_MS,
  );
  const inbox = await prune(`DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE handled_at < now() - make_interval(secs => ?) LIMIT ?) RETURNING 1`, INBOX_RETENTION_MS);
  let versions = 0;
  for (;;) {
    // one transaction per chunk: the floor row locked first (a counter created meanwhile waits and sees the new floor)
    const n = await em.fork().transactional(async (tx) => {
      await tx.execute('SELECT 1 FROM aggregate_versions_floor FOR UPDATE');
      const rows = await tx.execute<{ n: string }[]>(
        `WITH gone AS (
           DELETE FROM aggregate_versions WHERE ctid IN (SELECT ctid FROM aggregate_versions WHERE touched_at < now() - make_interval(secs => ?) LIMIT ?)
           RETURNING version
         ), raised AS (
           UPDATE aggregate_versions_floor SET version = GREATEST(version, (SELECT max(version) FROM gone)) WHERE EXISTS (SELECT 1 FROM gone) RETURNING 1
         )
         SELECT count(*) AS n FROM gone`,
        [INBOX_RETENTION_MS / 1000, CHUNK],
      );
      return Number(rows[0]?.n ?? 0);
    });
    versions += n;
    if (n < CHUNK) break;
  }
  if (parked > 0) runtime.logger.warn({ parked }, 'parked outbox rows older than the dead-letter retention deleted (never published)');
  return { outbox, parked, inbox, versions };
}

export const eventRetentionJob: EventJob = {
  name: 'event-retention',
  intervalMs: (config: PlatformConfig) => Math.min(3_600_000, Math.max(60_000, Math.floor(config.OUTBOX_RETENTION_MS / 24))),
  async run(runtime: EventRuntime) {
    const pruned = await pruneEventTables(runtime);
    if (pruned.outbox + pruned.inbox + pruned.versions + pruned.parked > 0)
      runtime.logger.info(pruned, 'event tables pruned (old sent outbox rows, parked rows, inbox rows, idle version counters)');
  },
};
