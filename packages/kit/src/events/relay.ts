/**
 * The outbox relay: publishes unsent outbox rows in commit order and marks them sent, in one
 * transaction per batch. Rows are locked FOR UPDATE SKIP LOCKED and relays of one database take
 * turns through a transaction-scoped advisory lock, so two replicas never publish the same row
 * and one aggregate's events keep their order. A failed publish rolls back: the rows stay
 * unsent and are retried with backoff, so nothing committed is lost while the broker is down.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import { backgroundWork, inBackground } from '../db';
import type { Logger } from '../logger';
import { tracePublish } from '../telemetry/events';
import type { EventBus } from './bus';
import { OutboxMessage } from './outbox';

const BATCH = 200;
/** Advisory lock key the relays of one database take turns with (a test holds it to keep rows unsent). */
export const RELAY_LOCK = 727_001;
const MAX_BACKOFF_MS = 10_000;
const RELAY_CONTEXT = 'outbox-relay';

export interface Relay {
  /** Publish soon (after a commit that wrote outbox rows). */
  poke(): void;
  /** Publishes everything unsent now; resolves with how many rows went out. */
  drain(): Promise<number>;
  stop(): Promise<void>;
}

export interface RelayOptions {
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  pollMs: number;
  namespace?: string;
}

export function startRelay({ orm, bus, logger, pollMs }: RelayOptions): Relay {
  let running = true;
  let wake: (() => void) | undefined;
  let failures = 0;
  let current: Promise<number> = Promise.resolve(0);

  const publishBatch = async (): Promise<number> => {
    const em = orm.em.fork();
    // Idle polls cost one index-only statement; the locking transaction runs only when there is work.
    const pending = await em.execute<{ id: string }[]>('SELECT id FROM outbox WHERE sent_at IS NULL LIMIT 1');
    if (pending.length === 0) return 0;
    return em.transactional(async (tx) => {
      const [lock] = await tx.execute<{ ok: boolean }[]>('SELECT pg_try_advisory_xact_lock(?) AS ok', [RELAY_LOCK]);
      if (!lock?.ok) return 0;
      const rows = await tx.execute<{ id: string; topic: string; key: string; envelope: unknown; traceparent: string | null }[]>(
        'SELECT id, topic, key, envelope, traceparent FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED',
        [BATCH],
      );
      if (rows.length === 0) return 0;
      await tracePublish(rows, (headers) =>
        bus.publish(
          rows.map((r, i) => ({
            topic: r.topic,
            key: r.key,
            value: typeof r.envelope === 'string' ? r.envelope : JSON.stringify(r.envelope),
            headers: headers[i]!,
          })),
        ),
      );
      const ids = rows.map((r) => r.id);
      await tx.execute(`UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
      return rows.length;
    });
  };

  const drain = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await publishBatch();
      total += n;
      if (n < BATCH) return total;
    }
  };

  const loop = async () => {
    while (running) {
      let delay = pollMs;
      try {
        current = drain();
        const sent = await current;
        if (failures > 0) logger.info({ sent }, 'outbox relay recovered');
        failures = 0;
      } catch (err) {
        failures += 1;
        delay = Math.min(MAX_BACKOFF_MS, pollMs * 2 ** Math.min(failures, 10));
        if (running) logger.warn({ err: (err as Error).message, failures, retryInMs: delay }, 'outbox relay could not publish; will retry');
      }
      if (!running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  };

  // Commits that may have written outbox rows wake the relay at once instead of waiting for the
  // next poll — except the relay's own commits, which would otherwise wake it in a busy loop.
  const wakeSoon = () => {
    if (backgroundWork.getStore() !== RELAY_CONTEXT) setImmediate(() => wake?.());
  };
  orm.em.getEventManager().registerSubscriber({
    afterFlush: (args) => {
      if (args.uow.getChangeSets().some((cs) => cs.entity instanceof OutboxMessage)) wakeSoon();
    },
    afterTransactionCommit: wakeSoon,
  });

  const done = inBackground(RELAY_CONTEXT, loop);
  return {
    poke: () => wake?.(),
    drain: async () => {
      await current.catch(() => 0);
      return drain();
    },
    async stop() {
      running = false;
      wake?.();
      await done;
    },
  };
}
