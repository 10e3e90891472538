/**
 * The outbox relay: publishes unsent outbox rows in sequence order (outbox_seq, assigned by the
 * database) and marks them sent. No transaction is ever held across the broker send:
 *
 * 1. claim: a short transaction leases a batch (lease_owner = this relay, lease_until = now +
 *    OUTBOX_LEASE_MS) with UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING;
 * 2. send: the batch goes to the bus with a deadline (OUTBOX_SEND_TIMEOUT_MS, shorter than the
 *    lease), only while the lease is still ours by this process's own clock;
 * 3. mark: after the broker acknowledged, one UPDATE sets sent_at.
 *
 * A frozen or dead relay's rows are claimed by another replica once their lease expires.
 * Per-aggregate order across replicas: a row is claimable only when no earlier unsent row of its
 * aggregate (topic + key) is leased to another live relay, claims take turns (a transaction-scoped
 * advisory lock, RELAY_LOCK) and a claim takes a prefix of the unsent rows by sequence — so one
 * aggregate's unsent rows are only ever in one relay's hands, oldest first. What a lease cannot
 * fence: a relay frozen between the broker's acknowledgement and the mark (or after the deadline
 * with its send still in flight) — the next owner publishes those rows again. That is the
 * at-least-once the consumers already absorb (inbox by event id; versioned copies).
 *
 * A failed publish leaves the rows unsent: their attempts and last_error are recorded, and they
 * are retried with backoff, so nothing committed is lost while the broker is down.
 *
 * Isolation: a batch is capped by bytes as well as rows, below the broker's message limit. A row
 * that can never be published (larger than EVENT_MAX_BYTES, or refused by the broker as invalid
 * or too large on its own) is parked (failed_at), logged loudly and counted; the rest flow on.
 * An event over the limit is refused at write time already (the flush fails with PAYLOAD_TOO_LARGE).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { MikroORM } from '@mikro-orm/postgresql';
import { GraphQLError } from 'graphql';
import { backgroundWork, inBackground } from '@crm/database';
import type { Logger } from '@crm/telemetry';
import { tracePublish } from './telemetry';
import { outboxLeaseTakeovers } from '@crm/telemetry';
import type { EventBus } from './bus';
import { errorText } from './failures';
import { OutboxMessage } from './outbox';
import { retry } from '@crm/errors';

const BATCH = 200;
/** Advisory lock key the relays of one database take turns to claim with (a test holds it to keep rows unsent). */
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
  /** OUTBOX_LEASE_MS: how long claimed rows stay this relay's. */
  leaseMs?: number;
  /** OUTBOX_SEND_TIMEOUT_MS: longest wait for the broker's acknowledgement; below leaseMs. */
  sendTimeoutMs?: number;
}

/** The claim's transaction: a frozen process inside it holds RELAY_LOCK no longer than this (server-side). */
const CLAIM_IDLE_TIMEOUT_MS = 2000;

/** A publish that outlived its deadline (the broker may still take it: the rows stay unsent, leased until expiry). */
export class SendTimeout extends Error {
  constructor(ms: number) {
    super(`broker did not acknowledge within ${ms} ms (OUTBOX_SEND_TIMEOUT_MS)`);
  }
}

/** `promise`, or a SendTimeout after `ms` (the timer never holds the process open). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new SendTimeout(ms)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export const envelopeBytes = (envelope: unknown) => Buffer.byteLength(typeof envelope === 'string' ? envelope : JSON.stringify(envelope));

/** Broker answers that retrying the same message can never fix. */
const UNPUBLISHABLE = /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|INVALID_RECORD|CORRUPT_MESSAGE|INVALID_TOPIC_EXCEPTION|too large/i;
function unpublishable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const e = err as { apiId?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.apiId === 'string' && UNPUBLISHABLE.test(e.apiId)) return true;
  if (typeof e.message === 'string' && UNPUBLISHABLE.test(e.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => unpublishable(x, depth + 1))) return true; // the client's MultipleErrors
  return unpublishable(e.cause, depth + 1);
}

export function startRelay({ orm, bus, logger, pollMs, maxEventBytes = 1_000_000, leaseMs = 10_000, sendTimeoutMs = 5000 }: RelayOptions): Relay {
  if (sendTimeoutMs >= leaseMs) throw new Error(`OUTBOX_SEND_TIMEOUT_MS (${sendTimeoutMs}) must be below OUTBOX_LEASE_MS (${leaseMs})`);
  let running = true;
  const stopping = new AbortController();
  let wake: (() => void) | undefined;
  let failures = 0;
  let parkedCount = 0;
  let current: Promise<number> = Promise.resolve(0);
  const batchBytes = Math.max(maxEventBytes, 64 * 1024);
  /** Who holds a lease: unique per relay (a restarted process is a new owner). */
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;

  interface Row { id: string; topic: string; key: string; envelope: unknown; traceparent: string | null; seq: string; previous_owner: string | null; previous_until: Date | null }
  /** Publishes rows, each in a PRODUCER span continuing the trace that staged it (telemetry). */
  const send = (rows: Row[]) =>
    tracePublish(rows, (headers) => bus.publish(rows.map((r, i) => ({ topic: r.topic, key: r.key, value: valueOf(r), headers: headers[i]! }))));
  const valueOf = (r: Row) => (typeof r.envelope === 'string' ? r.envelope : JSON.stringify(r.envelope));
  const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

  const park = async (em: { execute: MikroORM['em']['execute'] }, parked: { row: Row; reason: string }[]) => {
    for (const { row, reason } of parked) {
      parkedCount += 1;
      logger.error({ id: row.id, topic: row.topic, key: row.key, reason }, 'outbox row can never be published; parked (failed_at set)');
      await em.execute('UPDATE outbox SET failed_at = now(), attempts = attempts + 1, last_error = ? WHERE id = ?', [reason.slice(0, 2000), row.id]);
    }
    return parked.length;
  };

  /**
   * Leases up to BATCH unsent rows to this relay, oldest first, in one short transaction. Claimable:
   * unleased, lease expired, or already ours — and no earlier unsent row of the same aggregate is
   * leased to another relay whose lease still runs. Claims take turns (RELAY_LOCK; a relay that
   * finds it taken claims nothing this round). No SKIP LOCKED: claims are serialised already, and
   * skipping a row another statement holds for an instant (a mark or an attempts update) could
   * let its aggregate's next row be claimed before it. Returns the rows in sequence order, or null
   * when another relay was claiming.
   */
  const claim = async (em: ReturnType<MikroORM['em']['fork']>): Promise<Row[] | null> =>
    em.transactional(async (tx) => {
      const [lock] = await tx.execute<{ ok: boolean }[]>(
        "SELECT set_config('idle_in_transaction_session_timeout', ?, true), pg_try_advisory_xact_lock(?) AS ok",
        [String(CLAIM_IDLE_TIMEOUT_MS), RELAY_LOCK],
      );
      if (!lock?.ok) return null;
      const rows = await tx.execute<Row[]>(
        `WITH claimable AS (
           SELECT c.id, c.lease_owner AS previous_owner, c.lease_until AS previous_until FROM outbox c
           WHERE c.sent_at IS NULL AND c.failed_at IS NULL
             AND (c.lease_until IS NULL OR c.lease_until < now() OR c.lease_owner = ?)
             AND NOT EXISTS (
               SELECT 1 FROM outbox p
               WHERE p.topic = c.topic AND p.key = c.key AND p.seq < c.seq
                 AND p.sent_at IS NULL AND p.failed_at IS NULL
                 AND p.lease_until >= now() AND p.lease_owner <> ?)
           ORDER BY c.seq LIMIT ?
           FOR UPDATE OF c)
         UPDATE outbox o SET lease_owner = ?, lease_until = now() + make_interval(secs => ?)
         FROM claimable WHERE o.id = claimable.id
         RETURNING o.id, o.topic, o.key, o.envelope, o.traceparent, o.seq::text AS seq, claimable.previous_owner, claimable.previous_until`,
        [owner, owner, BATCH, owner, leaseMs / 1000],
      );
      return rows.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    });

  /**
   * A send that outlived its deadline. The bus cannot take a message back, so this relay waits for
   * it to settle (the client's own timeouts end it) before claiming again, and marks its rows sent
   * if it went through: this relay never publishes a row twice itself.
   */
  let abandoned: { done: Promise<boolean>; ids: string[] } | undefined;

  const publishBatch = async (): Promise<number> => {
    const em = orm.em.fork();
    if (abandoned) {
      const { done, ids } = abandoned;
      const delivered = await done;
      abandoned = undefined;
      if (delivered) {
        await em.execute(`UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id IN (${placeholders(ids.length)}) AND sent_at IS NULL`, ids);
        logger.warn({ rows: ids.length }, 'outbox relay: a publish that outlived its deadline went through after all; marked sent');
      }
    }
    // Idle polls cost one index-only statement; the claim runs only when there is work.
    const pending = await em.execute<{ id: string }[]>('SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL LIMIT 1');
    if (pending.length === 0) return 0;
    // The lease is ours until this instant by our own clock (taken before the claim: conservative).
    const claimedAt = performance.now();
    const rows = await claim(em);
    if (!rows || rows.length === 0) return 0;
    const taken = rows.filter((r) => r.previous_owner && r.previous_owner !== owner && r.previous_until);
    if (taken.length > 0) {
      outboxLeaseTakeovers.inc(taken.length);
      logger.warn({ rows: taken.length, from: [...new Set(taken.map((r) => r.previous_owner))] }, 'outbox relay took over rows whose lease expired (a frozen or dead relay)');
    }
    /** Time left to publish: the send deadline, cut short so that the lease outlives it. */
    const budget = () => Math.min(sendTimeoutMs, leaseMs - sendTimeoutMs / 2 - (performance.now() - claimedAt));

    // Cap the batch by bytes; a row over the event limit is parked, never sent.
    const batch: Row[] = [];
    const oversized: { row: Row; reason: string }[] = [];
    let bytes = 0;
    for (const r of rows) {
      const size = envelopeBytes(r.envelope);
      if (size > maxEventBytes) {
        oversized.push({ row: r, reason: `event is ${size} bytes, over EVENT_MAX_BYTES ${maxEventBytes}` });
        continue;
      }
      // Rows after the cap stay leased to us (we claim them again next); none of an aggregate is skipped before its predecessor.
      if (batch.length > 0 && bytes + size + RECORD_OVERHEAD > batchBytes) break;
      batch.push(r);
      bytes += size + RECORD_OVERHEAD;
    }
    const parked = await park(em, oversized);
    if (batch.length === 0) return parked; // parked rows count as progress for drain()
    const ids = batch.map((r) => r.id);
    const markSent = (sent: string[]) =>
      em.execute(`UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id IN (${placeholders(sent.length)}) AND sent_at IS NULL`, sent);
    const sendInTime = async (what: Row[]) => {
      const left = budget();
      // Frozen between the claim and now (or a slow claim): the lease may be another relay's already.
      if (left <= 0) throw new SendTimeout(0);
      const sending = send(what);
      try {
        await within(sending, left);
      } catch (err) {
        // Given up on, but the bus may still deliver it: settle it before this relay sends again.
        if (err instanceof SendTimeout) abandoned = { done: sending.then(() => true, () => false), ids: what.map((r) => r.id) };
        throw err;
      }
    };
    try {
      await sendInTime(batch);
    } catch (err) {
      await em
        .execute(`UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id IN (${placeholders(ids.length)})`, [errorText(err).slice(0, 2000), ...ids])
        .catch(() => undefined); // the database may be what failed
      if (!unpublishable(err)) throw err;
      // The broker refuses something in this batch for good: publish one by one, park what fails.
      for (const r of batch) {
        try {
          await sendInTime([r]);
          await markSent([r.id]);
        } catch (one) {
          if (!unpublishable(one)) throw one;
          await park(em, [{ row: r, reason: errorText(one) }]);
        }
      }
      return batch.length + parked;
    }
    // Acknowledged: mark sent. A relay frozen right here is the one case that publishes twice (see above).
    await markSent(ids);
    return batch.length + parked;
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
