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
import { errorText, isUnpublishable } from './failures';
import { OutboxMessage } from './outbox';
import { retry } from '@crm/errors';

/** A change set of an outbox row (entities declared with defineEntity have no class of their own to test with instanceof). */
const isOutboxRow = (cs: { meta: { className: string } }): boolean => cs.meta.className === OutboxMessage.meta.className;
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

interface Row {
  id: string;
  topic: string;
  key: string;
  envelope: unknown;
  traceparent: string | null;
  seq: string;
  previous_owner: string | null;
  previous_until: Date | null;
}
type Em = ReturnType<MikroORM['em']['fork']>;
interface Parked {
  row: Row;
  reason: string;
}

/** What the steps of one relay share: its options resolved, its lease owner name and what it has parked. */
interface RelayRun {
  orm: MikroORM;
  bus: EventBus;
  logger: Logger;
  maxEventBytes: number;
  leaseMs: number;
  sendTimeoutMs: number;
  batchBytes: number;
  /** Who holds a lease: unique per relay (a restarted process is a new owner). */
  owner: string;
  parkedCount: number;
  /**
   * A send that outlived its deadline. The bus cannot take a message back, so this relay waits for
   * it to settle (the client's own timeouts end it) before claiming again, and marks its rows sent
   * if it went through: this relay never publishes a row twice itself.
   */
  abandoned: { done: Promise<boolean>; ids: string[] } | undefined;
}

export function startRelay({ orm, bus, logger, pollMs, maxEventBytes = 1_000_000, leaseMs = 10_000, sendTimeoutMs = 5000 }: RelayOptions): Relay {
  if (sendTimeoutMs >= leaseMs) throw new Error(`OUTBOX_SEND_TIMEOUT_MS (${sendTimeoutMs}) must be below OUTBOX_LEASE_MS (${leaseMs})`);
  const run: RelayRun = {
    orm,
    bus,
    logger,
    maxEventBytes,
    leaseMs,
    sendTimeoutMs,
    batchBytes: Math.max(maxEventBytes, 64 * 1024),
    owner: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
    parkedCount: 0,
    abandoned: undefined,
  };
  let running = true;
  const stopping = new AbortController();
  const napper = napping();
  let current: Promise<number> = Promise.resolve(0);

  const loop = async () => {
    let failures = 0;
    while (running) {
      try {
        // Drain until it succeeds: a failing broker or database is retried with capped backoff.
        const sent = await retry(() => (current = drain(run)), {
          baseDelayMs: pollMs,
          maxDelayMs: MAX_BACKOFF_MS,
          signal: stopping.signal,
          wait: napper.nap,
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
      await napper.nap(pollMs);
    }
  };

  // Commits that may have written outbox rows wake the relay at once instead of waiting for the
  // next poll — except the relay's own commits, which would otherwise wake it in a busy loop.
  watchCommits(orm, maxEventBytes, () => {
    if (backgroundWork.getStore() !== RELAY_CONTEXT) setImmediate(napper.wake);
  });

  const done = inBackground(RELAY_CONTEXT, loop);
  return {
    poke: napper.wake,
    drain: async () => {
      await current.catch(() => 0);
      return drain(run);
    },
    parked: () => run.parkedCount,
    async stop() {
      running = false;
      stopping.abort(new Error('outbox relay stopping'));
      napper.wake();
      await done;
    },
  };
}

/** Pauses that `wake()` (a commit, poke() or stop()) ends early. */
function napping(): { nap: (ms: number) => Promise<void>; wake: () => void } {
  let wake: (() => void) | undefined;
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (wake = undefined));
  return { nap, wake: () => wake?.() };
}

/**
 * On `orm`'s flushes and commits: refuses an event over the limit when it is written, with a clear
 * error, instead of parking it later; and calls `wakeSoon` after a flush or commit that may have
 * written outbox rows.
 */
function watchCommits(orm: MikroORM, maxEventBytes: number, wakeSoon: () => void): void {
  orm.em.getEventManager().registerSubscriber({
    onFlush: (args) => {
      for (const cs of args.uow.getChangeSets()) {
        if (!isOutboxRow(cs)) continue;
        const row = cs.entity as OutboxMessage;
        const size = envelopeBytes(row.envelope);
        if (size > maxEventBytes) {
          throw new GraphQLError(`The change is too large to publish: event ${row.type} would be ${size} bytes, over the ${maxEventBytes}-byte limit (EVENT_MAX_BYTES)`, {
            extensions: { code: 'PAYLOAD_TOO_LARGE', eventType: row.type, bytes: size, limit: maxEventBytes },
          });
        }
      }
    },
    afterFlush: (args) => {
      if (args.uow.getChangeSets().some(isOutboxRow)) wakeSoon();
    },
    afterTransactionCommit: wakeSoon,
  });
}

/** Publishes everything unsent now; resolves with how many rows went out (or were parked). */
async function drain(run: RelayRun): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await publishBatch(run);
    total += n;
    if (n === 0) return total;
  }
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

const markSent = (em: Em, ids: string[]) =>
  em.execute(`UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id IN (${placeholders(ids.length)}) AND sent_at IS NULL`, ids);

/** Publishes rows, each in a PRODUCER span continuing the trace that staged it (telemetry). */
const send = (bus: EventBus, rows: Row[]) =>
  tracePublish(rows, (headers) =>
    bus.publish(rows.map((r, i) => ({ topic: r.topic, key: r.key, value: typeof r.envelope === 'string' ? r.envelope : JSON.stringify(r.envelope), headers: headers[i]! }))),
  );

async function park(run: RelayRun, em: { execute: MikroORM['em']['execute'] }, parked: Parked[]): Promise<number> {
  for (const { row, reason } of parked) {
    run.parkedCount += 1;
    run.logger.error({ id: row.id, topic: row.topic, key: row.key, reason }, 'outbox row can never be published; parked (failed_at set)');
    await em.execute('UPDATE outbox SET failed_at = now(), attempts = attempts + 1, last_error = ? WHERE id = ?', [reason.slice(0, 2000), row.id]);
  }
  return parked.length;
}

/**
 * Leases up to BATCH unsent rows to this relay, oldest first, in one short transaction. Claimable:
 * unleased, lease expired, or already ours — and no earlier unsent row of the same aggregate is
 * leased to another relay whose lease still runs. Claims take turns (RELAY_LOCK; a relay that
 * finds it taken claims nothing this round). No SKIP LOCKED: claims are serialised already, and
 * skipping a row another statement holds for an instant (a mark or an attempts update) could
 * let its aggregate's next row be claimed before it. Returns the rows in sequence order, or null
 * when another relay was claiming.
 */
function claim({ owner, leaseMs }: RelayRun, em: Em): Promise<Row[] | null> {
  return em.transactional(async (tx) => {
    const [lock] = await tx.execute<{ ok: boolean }[]>("SELECT set_config('idle_in_transaction_session_timeout', ?, true), pg_try_advisory_xact_lock(?) AS ok", [
      String(CLAIM_IDLE_TIMEOUT_MS),
      RELAY_LOCK,
    ]);
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
}

/** Waits for a send given up on earlier (run.abandoned) to settle, and marks its rows sent if it went through. */
async function settleAbandoned(run: RelayRun, em: Em): Promise<void> {
  if (!run.abandoned) return;
  const { done, ids } = run.abandoned;
  const delivered = await done;
  run.abandoned = undefined;
  if (delivered) {
    await markSent(em, ids);
    run.logger.warn({ rows: ids.length }, 'outbox relay: a publish that outlived its deadline went through after all; marked sent');
  }
}

/** Counts and logs the claimed rows whose lease another relay held until it expired. */
function noteTakeovers({ owner, logger }: RelayRun, rows: Row[]): void {
  const taken = rows.filter((r) => r.previous_owner && r.previous_owner !== owner && r.previous_until);
  if (taken.length === 0) return;
  outboxLeaseTakeovers.inc(taken.length);
  logger.warn({ rows: taken.length, from: [...new Set(taken.map((r) => r.previous_owner))] }, 'outbox relay took over rows whose lease expired (a frozen or dead relay)');
}

/** The claimed rows that go out in one send, capped by bytes, and those over the event limit (parked, never sent). */
function capByBytes(rows: Row[], maxEventBytes: number, batchBytes: number): { batch: Row[]; oversized: Parked[] } {
  const batch: Row[] = [];
  const oversized: Parked[] = [];
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
  return { batch, oversized };
}

/**
 * Sends `rows` within `budget()` (the time left before the lease may be another relay's). A send
 * given up on is remembered (run.abandoned): the bus may still deliver it.
 */
async function sendInTime(run: RelayRun, rows: Row[], budget: () => number): Promise<void> {
  const left = budget();
  // Frozen between the claim and now (or a slow claim): the lease may be another relay's already.
  if (left <= 0) throw new SendTimeout(0);
  const sending = send(run.bus, rows);
  try {
    await within(sending, left);
  } catch (err) {
    // Given up on, but the bus may still deliver it: settle it before this relay sends again.
    if (err instanceof SendTimeout)
      run.abandoned = {
        done: sending.then(
          () => true,
          () => false,
        ),
        ids: rows.map((r) => r.id),
      };
    throw err;
  }
}

/** One claim, send and mark; resolves with the rows published or parked (0: nothing to do). */
async function publishBatch(run: RelayRun): Promise<number> {
  const em = run.orm.em.fork();
  await settleAbandoned(run, em);
  // Idle polls cost one index-only statement; the claim runs only when there is work.
  const pending = await em.execute<{ id: string }[]>('SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL LIMIT 1');
  if (pending.length === 0) return 0;
  // The lease is ours until this instant by our own clock (taken before the claim: conservative).
  const claimedAt = performance.now();
  const rows = await claim(run, em);
  if (!rows || rows.length === 0) return 0;
  noteTakeovers(run, rows);
  const { sendTimeoutMs, leaseMs } = run;
  /** Time left to publish: the send deadline, cut short so that the lease outlives it. */
  const budget = () => Math.min(sendTimeoutMs, leaseMs - sendTimeoutMs / 2 - (performance.now() - claimedAt));

  const { batch, oversized } = capByBytes(rows, run.maxEventBytes, run.batchBytes);
  const parked = await park(run, em, oversized);
  if (batch.length === 0) return parked; // parked rows count as progress for drain()
  const ids = batch.map((r) => r.id);
  try {
    await sendInTime(run, batch, budget);
  } catch (err) {
    await em
      .execute(`UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id IN (${placeholders(ids.length)})`, [errorText(err).slice(0, 2000), ...ids])
      .catch(() => undefined); // the database may be what failed
    if (!isUnpublishable(err)) throw err;
    await publishOneByOne(run, em, batch, budget);
    return batch.length + parked;
  }
  // Acknowledged: mark sent. A relay frozen right here is the one case that publishes twice (see above).
  await markSent(em, ids);
  return batch.length + parked;
}

/** The broker refuses something in `batch` for good: publish it one by one, park what fails. */
async function publishOneByOne(run: RelayRun, em: Em, batch: Row[], budget: () => number): Promise<void> {
  for (const r of batch) {
    try {
      await sendInTime(run, [r], budget);
      await markSent(em, [r.id]);
    } catch (one) {
      if (!isUnpublishable(one)) throw one;
      await park(run, em, [{ row: r, reason: errorText(one) }]);
    }
  }
}
