/**
 * The one way to connect to Redis (gateway: rate limits, login limits, token denylist, APQ;
 * subgraphs: caches). One outage policy for every user:
 * - a command fails at once while Redis is away (no offline queue, one attempt per command) and
 *   within `commandTimeoutMs` when Redis hangs — never a request waiting on Redis;
 * - reconnection is retried forever with capped backoff (../retry.ts);
 * - the outage is logged once when it starts and once when it ends (not per command, not per retry);
 * - every user has a fallback, so an outage degrades and never crashes nor unlimits: a cache or
 *   the APQ store answers a miss (`orFallback`), the limiters switch to their in-memory insurance
 *   limiter (gateway/src/limiter.ts), the denylist keeps its in-memory copy.
 */
import { Redis } from 'ioredis';
import type { Logger } from '@crm/telemetry';
import { backoffDelay } from '@crm/errors';

export interface RedisOptions {
  /** Who uses the connection, in its log lines ("gateway", "analytics cache"). */
  name: string;
  logger?: Logger;
  /** Longest wait for one command before it fails (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Longest wait for a connection (default 2000 ms). */
  connectTimeoutMs?: number;
}

/** Reconnection pauses: 100 ms doubling to 3 s, with jitter. */
export const REDIS_RECONNECT = { baseDelayMs: 100, maxDelayMs: 3000 } as const;

export function createRedis(url: string, options: RedisOptions): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    retryStrategy: (times) => backoffDelay(times, REDIS_RECONNECT),
    lazyConnect: false,
  });
  const log = options.logger;
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log?.warn({ redis: options.name, err: err.message }, 'redis unavailable; using the fallback until it is back');
  });
  redis.on('ready', () => {
    if (down) log?.info({ redis: options.name }, 'redis available again');
    else log?.debug({ redis: options.name }, 'redis connected');
    down = false;
  });
  return redis;
}

/**
 * `op` on Redis, or `fallback` when Redis is not ready or the command fails (the outage is
 * already logged by the connection): for users to whom Redis is an optimisation.
 */
export async function orFallback<T, F>(redis: Redis, op: (redis: Redis) => Promise<T>, fallback: F): Promise<T | F> {
  if (redis.status !== 'ready') return fallback;
  try {
    return await op(redis);
  } catch {
    return fallback;
  }
}

/** Resolves once the connection is ready (true), or after `ms` (false: starting without Redis is allowed). */
export async function waitRedisReady(redis: Redis, ms = 3000): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, ms);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

/** Closes the connection: QUIT when Redis answers, else at once (and no reconnecting either way). */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') return void redis.disconnect();
  await redis.quit().catch(() => redis.disconnect());
}
