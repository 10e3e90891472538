/**
 * rate-limiter-flexible limiters: RateLimiterRedis (shared by every gateway replica) with a
 * RateLimiterMemory insurance limiter of the same shape, used for as long as Redis is not ready
 * (rejectIfRedisNotReady) or a Redis command fails; RateLimiterMemory alone without REDIS_URL.
 * While the insurance limiter answers, each replica counts on its own: limits are per replica
 * (at worst N × the limit for N replicas) — degraded, never unlimited, never an error.
 */
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

export interface LimiterShape {
  keyPrefix: string;
  points: number;
  duration: number;
  blockDuration?: number;
}

export function createLimiter(redis: Redis | undefined, shape: LimiterShape): RateLimiterAbstract {
  const memory = new RateLimiterMemory({ ...shape });
  if (!redis) return memory;
  return new RateLimiterRedis({ ...shape, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: memory });
}

export { RateLimiterRes };

/** The IETF draft's RateLimit-* headers (plus Retry-After when refused). */
export function rateLimitHeaders(limit: number, res: RateLimiterRes, refused: boolean): Record<string, string> {
  const reset = Math.max(0, Math.ceil(res.msBeforeNext / 1000));
  return {
    'RateLimit-Limit': String(limit),
    'RateLimit-Remaining': String(Math.max(0, res.remainingPoints)),
    'RateLimit-Reset': String(reset),
    ...(refused ? { 'Retry-After': String(Math.max(1, reset)) } : {}),
  };
}
