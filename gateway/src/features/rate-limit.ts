/**
 * Cost limit and rate limit, per operation (docs/gateway-protection.md):
 * - the operation's estimated cost (../cost.ts, with its variables) above MAX_COST is refused
 *   with COST_LIMIT_EXCEEDED (400) before anything runs;
 * - otherwise it consumes points = min(RATE_LIMIT_POINTS, max(1, ceil(cost / RATE_LIMIT_COST_PER_POINT)))
 *   from the caller's budget of RATE_LIMIT_POINTS per RATE_LIMIT_WINDOW_SECONDS — per user when
 *   authenticated, per client IP otherwise; a request that never reaches an operation (parse or
 *   validation error) costs 1 point;
 * - over the budget: HTTP 429, Retry-After and RATE_LIMITED. Every GraphQL response carries
 *   RateLimit-Limit / -Remaining / -Reset.
 * Rate limits are on unless NODE_ENV=test (RATE_LIMIT_ENABLED forces either way); the cost
 * limit is always on.
 */
import { GraphQLError } from 'graphql';
import { gatewayRefusals } from '@crm/telemetry';
import { estimateCost, pointsFor } from '../cost';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { createLimiter, rateLimitHeaders, RateLimiterRes } from '../limiter';
import { redisPrefix } from '../redis';
import { requestOf } from '../request-info';
import type { FeatureOptions, GatewayFeature } from './feature';

export function rateLimitsEnabled(config: FeatureOptions['config']): boolean {
  return config.RATE_LIMIT_ENABLED ?? config.NODE_ENV !== 'test';
}

/**
 * One budget per user (per IP when anonymous) for every client operation, HTTP or WebSocket: a
 * subscribe goes through the same Apollo pipeline (../pipeline.ts `checkOperation`), so it is charged
 * here like a query. The gateway's own per-event resolutions never reach Apollo's pipeline.
 */
export function useRateLimits({ config, logger, redis }: FeatureOptions): GatewayFeature {
  const limiter: RateLimiterAbstract = createLimiter(redis, {
    keyPrefix: `${redisPrefix(config)}rl`,
    points: config.RATE_LIMIT_POINTS,
    duration: config.RATE_LIMIT_WINDOW_SECONDS,
  });
  const enabled = rateLimitsEnabled(config);
  const limit = config.RATE_LIMIT_POINTS;

  const consume = async (key: string, points: number, setHeader: (name: string, value: string) => void): Promise<void> => {
    try {
      const res = await limiter.consume(key, Math.min(points, limit));
      for (const [n, v] of Object.entries(rateLimitHeaders(limit, res, false))) setHeader(n, v);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        // Both Redis and the insurance limiter failed: should not happen; do not fail the request.
        logger.error({ err }, 'rate limiter failed');
        return;
      }
      const headers = rateLimitHeaders(limit, err, true);
      gatewayRefusals.inc({ reason: 'rate_limited' });
      for (const [n, v] of Object.entries(headers)) setHeader(n, v);
      throw new GraphQLError(`Rate limit exceeded: ${limit} points per ${config.RATE_LIMIT_WINDOW_SECONDS} s (RATE_LIMIT_POINTS); retry in ${headers['Retry-After']} s`, {
        extensions: { code: 'RATE_LIMITED', retryAfter: Number(headers['Retry-After']), http: { status: 429, headers: new Map(Object.entries(headers)) } },
      });
    }
  };

  return {
    name: 'rate-limit',
    async ready(): Promise<Record<string, boolean>> {
      return redis ? { redis: redis.status === 'ready' } : {};
    },
    apolloPlugins: [
      {
        async requestDidStart({ contextValue }) {
          const info = requestOf(contextValue);
          const key = contextValue.identity ? `u:${contextValue.identity.userId}` : `ip:${info?.ip ?? 'unknown'}`;
          const setHeader = (name: string, value: string) => {
            if (info && !info.res.headersSent) info.res.setHeader(name, value);
          };
          let charged = false;
          return {
            async didResolveOperation({ schema, document, operation, request }) {
              const cost = operation ? estimateCost(schema, document, operation, request.variables ?? {}) : 0;
              if (cost > config.MAX_COST) {
                charged = true; // refused before running: no points
                gatewayRefusals.inc({ reason: 'cost_limit' });
                throw new GraphQLError(`Operation cost ${cost} exceeds the limit of ${config.MAX_COST} (MAX_COST)`, {
                  extensions: { code: 'COST_LIMIT_EXCEEDED', cost, maxCost: config.MAX_COST, http: { status: 400 } },
                });
              }
              if (!enabled) return;
              charged = true;
              await consume(key, pointsFor(cost, config.RATE_LIMIT_COST_PER_POINT), setHeader);
            },
            async willSendResponse() {
              if (!enabled || charged) return;
              charged = true;
              await consume(key, 1, setHeader).catch(() => undefined); // already answering with an error
            },
          };
        },
      },
    ],
  };
}
