/**
 * Transient versus permanent failures. A transient one is the infrastructure's (the database or
 * broker unreachable, restarting, overloaded; a serialization or deadlock victim): the same event
 * will succeed later, so it is retried for as long as it takes and never dead-lettered. Anything
 * else is the event's or the handler's, and is dead-lettered after a few attempts.
 *
 * The one place that classifies failures for the event path: the consumer (transient or the
 * event's own), the outbox relay (retry or park: isUnpublishable) and the Kafka bus (broker
 * unreachable at start, protocol errors by id).
 */

/**
 * Postgres SQLSTATEs that say "try again": connection exceptions (08…), shutdown (57P01–03), serialization (40001),
 * deadlock (40P01), resources (53…), and the connection timeouts (db.ts): lock_timeout (55P03), statement_timeout
 * (57014) and idle_in_transaction_session_timeout (25P03).
 */
const PG_TRANSIENT = /^(08...|57P0[123]|40001|40P01|53...|55P03|57014|25P03)$/;
const NODE_TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
const MESSAGE_TRANSIENT = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /timeout acquiring a connection/i,
  /connection (?:is )?(?:closed|ended|refused|reset)/i,
  /the database system is (?:starting up|shutting down|in recovery mode)/i,
  /terminating connection/i,
  /Client has encountered a connection error/i,
  /too many clients/i,
];
const NAME_TRANSIENT = /^(ConnectionException|DeadlockException|LockWaitTimeoutException|BusBackpressureError)$/;
/** The Kafka client's codes for a broker out of reach or too slow (publishing a dead letter while it is away). */
const KAFKA_TRANSIENT = new Set(['PLT_KFK_NETWORK', 'PLT_KFK_TIMEOUT']);

/** Codes of a broker (or any peer) that cannot be reached at all, as opposed to one that answers with an error. */
const UNREACHABLE = new Set([...KAFKA_TRANSIENT, 'ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);
/** Broker answers that retrying the same message can never fix (by API error id or message). */
const UNPUBLISHABLE = /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|INVALID_RECORD|CORRUPT_MESSAGE|INVALID_TOPIC_EXCEPTION|too large/i;

interface ErrorLike {
  code?: unknown;
  sqlState?: unknown;
  name?: unknown;
  message?: unknown;
  apiId?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/**
 * Whether `test` holds for `err` or for anything it wraps: its `cause` chain and the `errors` of an
 * AggregateError (connect to each address) or of the Kafka client's MultipleErrors, `maxDepth` deep.
 */
function inChain(err: unknown, test: (e: ErrorLike) => boolean, maxDepth = 5, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > maxDepth) return false;
  const e = err as ErrorLike;
  if (test(e)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => inChain(x, test, maxDepth, depth + 1))) return true;
  return inChain(e.cause, test, maxDepth, depth + 1);
}

const transientHere = (e: ErrorLike) =>
  [e.code, e.sqlState].some((code) => typeof code === 'string' && (PG_TRANSIENT.test(code) || NODE_TRANSIENT.has(code) || KAFKA_TRANSIENT.has(code))) ||
  (typeof e.name === 'string' && NAME_TRANSIENT.test(e.name)) ||
  (typeof e.message === 'string' && MESSAGE_TRANSIENT.some((re) => re.test(e.message as string)));

/**
 * Whether `err` (or what it wraps) is an infrastructure failure that will pass: the consumer holds
 * the partition and retries it instead of dead-lettering. (One argument: `retry` may pass it as
 * `shouldRetry`, which is called with the attempt number too.)
 */
export function isTransient(err: unknown): boolean {
  return inChain(err, transientHere);
}

/**
 * A broker that cannot be reached at all (as opposed to one that answers with an error): the Kafka
 * bus then starts degraded instead of waiting for it.
 */
export function isUnreachable(err: unknown): boolean {
  return inChain(err, (e) => typeof e.code === 'string' && UNREACHABLE.has(e.code));
}

/**
 * A broker refusal that retrying the same message can never fix (too large, invalid record): the
 * outbox relay parks that row instead of retrying it. Every other publish failure is retried.
 */
export function isUnpublishable(err: unknown): boolean {
  return inChain(err, (e) => (typeof e.apiId === 'string' && UNPUBLISHABLE.test(e.apiId)) || (typeof e.message === 'string' && UNPUBLISHABLE.test(e.message)));
}

/** Whether the broker answered with the protocol error `apiId` (e.g. OFFSET_OUT_OF_RANGE) anywhere in `err`. */
export function hasBrokerError(err: unknown, apiId: string): boolean {
  return inChain(err, (e) => e.apiId === apiId, 6);
}

export const errorText = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err));
