/**
 * The gateway's one Redis connection (rate limits, login limits, token denylist, APQ), made by
 * the kit's factory with the kit's one outage policy (packages/runtime/src/redis.ts). What each user
 * falls back to while Redis is away: the limiters to their in-memory insurance limiter
 * (./limiter.ts), the denylist to its in-memory copy (./revocations.ts), APQ to a miss (the
 * client resends its query) — never a crash, never unlimited.
 */
import type { Redis } from 'ioredis';
import { createRedis } from '@crm/runtime';
import { type Logger } from '@crm/telemetry';
import { type PlatformConfig } from '@crm/config';

export function createGatewayRedis(config: PlatformConfig, logger: Logger): Redis | undefined {
  return config.REDIS_URL ? createRedis(config.REDIS_URL, { name: 'gateway', logger }) : undefined;
}

/** Keys of this deployment (and of this test run: KAFKA_NAMESPACE is unique per test stack). */
export function redisPrefix(config: PlatformConfig): string {
  return `${config.RATE_LIMIT_PREFIX}${config.KAFKA_NAMESPACE}`;
}
