/**
 * The gateway's one Redis connection (rate limits, login limits, token denylist, APQ cache).
 * Policy when Redis is unreachable: commands fail at once (no offline queue), reconnection is
 * retried forever with a capped backoff, and every user of this connection has a fallback (the
 * in-memory insurance limiter, the in-memory denylist, a cache miss) — never a crash, never
 * unlimited. Errors are logged at most once per 30 s.
 */
import { Redis } from 'ioredis';
import type { Logger, PlatformConfig } from '@crm/kit';

export function createGatewayRedis(config: PlatformConfig, logger: Logger): Redis | undefined {
  if (!config.REDIS_URL) return undefined;
  const redis = new Redis(config.REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 3000),
    lazyConnect: false,
  });
  let lastLog = 0;
  redis.on('error', (err: Error) => {
    if (Date.now() - lastLog < 30_000) return;
    lastLog = Date.now();
    logger.warn({ err: err.message }, 'redis unavailable; gateway limits use their in-memory fallback');
  });
  redis.on('ready', () => logger.info('redis connected'));
  return redis;
}

/** Keys of this deployment (and of this test run: KAFKA_NAMESPACE is unique per test stack). */
export function redisPrefix(config: PlatformConfig): string {
  return `${config.RATE_LIMIT_PREFIX}${config.KAFKA_NAMESPACE}`;
}

/** Resolves once the connection is ready, or after `ms` (starting without Redis is allowed). */
export async function waitReady(redis: Redis, ms = 3000): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => { redis.off('ready', onReady); resolve(false); }, ms);
    const onReady = () => { clearTimeout(timer); resolve(true); };
    redis.once('ready', onReady);
  });
}
