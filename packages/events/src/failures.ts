/**
 * Transient versus permanent failures. A transient one is the infrastructure's (the database or
 * broker unreachable, restarting, overloaded; a serialization or deadlock victim): the same event
 * will succeed later, so it is retried for as long as it takes and never dead-lettered. Anything
 * else is the event's or the handler's, and is dead-lettered after a few attempts.
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

/** Whether `err` (or what it wraps) is an infrastructure failure that will pass. */
export function isTransient(err: unknown): boolean {
  return transient(err, 0);
}

function transient(err: unknown, depth: number): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const e = err as { code?: unknown; sqlState?: unknown; name?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  for (const code of [e.code, e.sqlState]) {
    if (typeof code === 'string' && (PG_TRANSIENT.test(code) || NODE_TRANSIENT.has(code) || KAFKA_TRANSIENT.has(code))) return true;
  }
  if (typeof e.name === 'string' && NAME_TRANSIENT.test(e.name)) return true;
  if (typeof e.message === 'string' && MESSAGE_TRANSIENT.some((re) => re.test(e.message as string))) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => transient(x, depth + 1))) return true; // AggregateError (connect to each address)
  return transient(e.cause, depth + 1);
}

export const errorText = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err));
