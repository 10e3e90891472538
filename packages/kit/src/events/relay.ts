/**
 * The outbox relay: publishes unsent outbox rows in sequence order (outbox_seq, assigned by the
 * database) and marks them sent, in one transaction per batch. Rows are locked FOR UPDATE SKIP
 * LOCKED and relays of one database take turns through a transaction-scoped advisory lock, so two
 * replicas never publish the same row and one aggregate's events keep their order. A failed
 * publish rolls back: the rows stay unsent, their attempts and last_error are recorded, and they
 * are retried with backoff, so nothing committed is lost while the broker is down.
 *
 * Isolation: a batch is capped by bytes as well as rows, below the broker's message limit. A row
 * that can never be published (larger than EVENT_MAX_BYTES, or refused by the broker as invalid
 * or too large on its own) is parked (failed_at), logged loudly and counted; the rest flow on.
 * An event over the limit is refused at write time already (the flush fails with PAYLOAD_TOO_LARGE).
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import { GraphQLError } from 'graphql';
import { backgroundWork, inBackground } from '../db';
import type { Logger } from '../logger';
import { tracePublish } from '../telemetry/events';
import type { EventBus } from './bus';
import { errorText } from './failures';
import { OutboxMessage } from './outbox';
import { retry } from '../retry';

const BATCH = 200;
/** Advisory lock key the relays of one database take turns with (a test holds it to keep rows unsent). */
export const RELAY_LOCK = 727_001;
const MAX_BACKOFF_MS = 10_000;
const RELAY_CONTEXT = 'outbox-relay';
/** Per-message overhead in a Kafka record batch (key, headers, varints): generous. */
const RECORD_OVERHEAD = 512;

export interface Relay {
  /** Publish soon (after a commit that wrote outbox rows). */
  poke(): void;
  /** Publishes everything unsent now; resolves with how many rows went out. */
  drain(): Promise<number>;
  /** Rows parked as unpublishable since start. */
  parked(): number;
  stop(): Promise<void>;
}

export interface RelayOptions {
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  pollMs: number;
  namespace?: string;
  /** EVENT_MAX_BYTES: larger events are refused at write time and parked if found in the outbox. */
  maxEventBytes?: number;
}

export const envelopeBytes = (envelope: unknown) => Buffer.byteLength(typeof envelope === 'string' ? envelope : JSON.stringify(envelope));

/** Broker answers that retrying the same message can never fix. */
const UNPUBLISHABLE = /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|INVALID_RECORD|CORRUPT_MESSAGE|INVALID_TOPIC_EXCEPTION|too large/i;
function unpublishable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const e = err as { type?: unknown; message?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.type === 'string' && UNPUBLISHABLE.test(e.type)) return true;
  if (typeof e.message === 'string' && UNPUBLISHABLE.test(e.message)) return true;
  return unpublishable(e.cause ?? e.originalError, depth + 1);
}

export function startRelay({ orm, bus, logger, pollMs, maxEventBytes = 1_000_000 }: RelayOptions): Relay {
  let running = true;
  const stopping = new AbortController();
  let wake: (() => void) | undefined;
  let failures = 0;
  let parkedCount = 0;
  let current: Promise<number> = Promise.resolve(0);
  const batchBytes = Math.max(maxEventBytes, 64 * 1024);

  type Row = { id: string; topic: string; key: string; envelope: unknown; traceparent: string | null };
  /** Publishes rows, each in a PRODUCER span continuing the trace that staged it (telemetry). */
  const send = (rows: Row[]) =>
    tracePublish(rows, (headers) => bus.publish(rows.map((r, i) => ({ topic: r.topic, key: r.key, value: valueOf(r), headers: headers[i]! }))));
  const valueOf = (r: Row) => (typeof r.envelope === 'string' ? r.envelope : JSON.stringify(r.envelope));

  const park = async (em: { execute: MikroORM['em']['execute'] }, parked: { row: Row; reason: string }[]) => {
    for (const { row, reason } of parked) {
      parkedCount += 1;
      logger.error({ id: row.id, topic: row.topic, key: row.key, reason }, 'outbox row can never be published; parked (failed_at set)');
      await em.execute('UPDATE outbox SET failed_at = now(), attempts = attempts + 1, last_error = ? WHERE id = ?', [reason.slice(0, 2000), row.id]);
    }
    return parked.length;
  };

  const publishBatch = async (): Promise<number> => {
    const em = orm.em.fork();
    // Idle polls cost one index-only statement; the locking transaction runs only when there is work.
    const pending = await em.execute<{ id: string }[]>('SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL LIMIT 1');
    if (pending.length === 0) return 0;
    let attempted: Row[] = [];
    let oversized: { row: Row; reason: string }[] = [];
    try {
      return await em.transactional(async (tx) => {
        const [lock] = await tx.execute<{ ok: boolean }[]>('SELECT pg_try_advisory_xact_lock(?) AS ok', [RELAY_LOCK]);
        if (!lock?.ok) return 0;
        const rows = await tx.execute<Row[]>(
          'SELECT id, topic, key, envelope, traceparent FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED',
          [BATCH],
        );
        // Cap the batch by bytes; a row over the event limit is parked, never sent.
        const batch: Row[] = [];
        let bytes = 0;
        oversized = [];
        for (const r of rows) {
          const size = envelopeBytes(r.envelope);
          if (size > maxEventBytes) {
            oversized.push({ row: r, reason: `event is ${size} bytes, over EVENT_MAX_BYTES ${maxEventBytes}` });
            continue;
          }
          if (batch.length > 0 && bytes + size + RECORD_OVERHEAD > batchBytes) break;
          batch.push(r);
          bytes += size + RECORD_OVERHEAD;
        }
        attempted = batch;
        if (batch.length > 0) {
          await send(batch);
          const ids = batch.map((r) => r.id);
          await tx.execute(`UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
        }
        return batch.length + (await park(tx, oversized)); // parked rows count as progress for drain()
      });
    } catch (err) {
      if (attempted.length === 0) throw err;
      const ids = attempted.map((r) => r.id);
      await em
        .execute(`UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id IN (${ids.map(() => '?').join(', ')})`, [errorText(err).slice(0, 2000), ...ids])
        .catch(() => undefined); // the database may be what failed
      await park(em, oversized).catch(() => undefined);
      if (!unpublishable(err)) throw err;
      // The broker refuses something in this batch for good: publish one by one, park what fails.
      for (const r of attempted) {
        try {
          await send([r]);
          await em.execute('UPDATE outbox SET sent_at = now() WHERE id = ?', [r.id]);
        } catch (one) {
          if (!unpublishable(one)) throw one;
          await park(em, [{ row: r, reason: errorText(one) }]);
        }
      }
      return attempted.length;
    }
  };

  const drain = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await publishBatch();
      total += n;
      if (n === 0) return total;
    }
  };

  /** A pause that a commit (wake) or stop() ends early. */
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (wake = undefined));

  const loop = async () => {
    while (running) {
      try {
        // Drain until it succeeds: a failing broker or database is retried with capped backoff.
        const sent = await retry(() => (current = drain()), {
          baseDelayMs: pollMs,
          maxDelayMs: MAX_BACKOFF_MS,
          signal: stopping.signal,
          wait: nap,
          onRetry: ({ error, attempt, delayMs }) => {
            failures = attempt;
            logger.warn({ err: errorText(error), failures, retryInMs: delayMs }, 'outbox relay could not publish; will retry');
          },
        });
        if (failures > 0) logger.info({ sent }, 'outbox relay recovered');
        failures = 0;
      } catch {
        break; // stopping
      }
      if (!running) break;
      await nap(pollMs);
    }
  };

  // Commits that may have written outbox rows wake the relay at once instead of waiting for the
  // next poll — except the relay's own commits, which would otherwise wake it in a busy loop.
  const wakeSoon = () => {
    if (backgroundWork.getStore() !== RELAY_CONTEXT) setImmediate(() => wake?.());
  };
  orm.em.getEventManager().registerSubscriber({
    // Refuse an event over the limit when it is written, with a clear error, instead of parking it later.
    onFlush: (args) => {
      for (const cs of args.uow.getChangeSets()) {
        if (!(cs.entity instanceof OutboxMessage)) continue;
        const size = envelopeBytes(cs.entity.envelope);
        if (size > maxEventBytes) {
          throw new GraphQLError(`The change is too large to publish: event ${cs.entity.type} would be ${size} bytes, over the ${maxEventBytes}-byte limit (EVENT_MAX_BYTES)`, {
            extensions: { code: 'PAYLOAD_TOO_LARGE', eventType: cs.entity.type, bytes: size, limit: maxEventBytes },
          });
        }
      }
    },
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
    parked: () => parkedCount,
    async stop() {
      running = false;
      stopping.abort(new Error('outbox relay stopping'));
      wake?.();
      await done;
    },
  };
}
