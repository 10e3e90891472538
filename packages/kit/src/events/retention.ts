/**
 * Retention of the event tables, run by every subgraph as a job: sent outbox rows older than
 * OUTBOX_RETENTION_MS and inbox rows older than INBOX_RETENTION_MS are deleted, in chunks so no
 * statement holds many locks. Unsent and parked (failed_at) outbox rows are never deleted, nor the
 * aggregate version counters. Keep INBOX_RETENTION_MS above the Kafka retention plus the DLQ
 * replay window: an event redelivered or replayed after its inbox row is gone would apply again.
 */
import type { PlatformConfig } from '../config';
import type { Job, SubgraphRuntime } from '../subgraph';

const CHUNK = 5000;

export async function pruneEventTables(runtime: SubgraphRuntime): Promise<{ outbox: number; inbox: number }> {
  const em = runtime.fork();
  const { OUTBOX_RETENTION_MS, INBOX_RETENTION_MS } = runtime.config;
  const prune = async (sql: string, ageMs: number) => {
    let total = 0;
    for (;;) {
      const rows = await em.execute<{ n: string }[]>(`WITH gone AS (${sql}) SELECT count(*) AS n FROM gone`, [ageMs / 1000, CHUNK]);
      const n = Number(rows[0]?.n ?? 0);
      total += n;
      if (n < CHUNK) return total;
    }
  };
  const outbox = await prune(
    `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => ?) LIMIT ?) RETURNING 1`,
    OUTBOX_RETENTION_MS,
  );
  const inbox = await prune(
    `DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE handled_at < now() - make_interval(secs => ?) LIMIT ?) RETURNING 1`,
    INBOX_RETENTION_MS,
  );
  return { outbox, inbox };
}

export const eventRetentionJob: Job = {
  name: 'event-retention',
  intervalMs: (config: PlatformConfig) => Math.min(3_600_000, Math.max(60_000, Math.floor(config.OUTBOX_RETENTION_MS / 24))),
  async run(runtime: SubgraphRuntime) {
    const pruned = await pruneEventTables(runtime);
    if (pruned.outbox + pruned.inbox > 0) runtime.logger.info(pruned, 'old sent outbox rows and inbox rows deleted');
  },
};
