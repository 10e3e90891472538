/**
 * Deleted users' access tokens stop working at once instead of when they expire. Every gateway
 * replica consumes user.events with its own consumer group (from the latest offset) and, on
 * user.deleted, denies that user id for ACCESS_TOKEN_TTL_SECONDS (by then every token issued
 * before the deletion has expired): in memory, and in Redis when REDIS_URL is set so a replica
 * started later also knows. A request with a denied user's token gets UNAUTHENTICATED (401).
 */
import { randomUUID } from 'node:crypto';
import { TOPICS, isEvent, parseEnvelope, type Subscription } from '@crm/kit';
import { unauthenticated } from '../auth';
import { redisPrefix } from '../redis';
import type { GatewayFeature } from './feature';
import type { FeatureOptions } from '.';

export function useTokenDenylist({ config, logger, bus, redis }: FeatureOptions): GatewayFeature {
  const ttl = config.ACCESS_TOKEN_TTL_SECONDS;
  const prefix = `${redisPrefix(config)}deny:`;
  const denied = new Map<string, number>();
  let subscription: Subscription | undefined;

  const deny = async (userId: string) => {
    const now = Date.now();
    for (const [id, until] of denied) if (until <= now) denied.delete(id);
    denied.set(userId, now + ttl * 1000);
    if (redis) await redis.set(prefix + userId, '1', 'EX', ttl).catch((err: Error) => logger.warn({ err: err.message }, 'denylist: redis write failed'));
  };

  const isDenied = async (userId: string): Promise<boolean> => {
    const until = denied.get(userId);
    if (until !== undefined && until > Date.now()) return true;
    if (!redis || redis.status !== 'ready') return false;
    return (await redis.exists(prefix + userId).catch(() => 0)) === 1;
  };

  return {
    name: 'token-denylist',
    async attach() {
      if (!bus) return;
      subscription = await bus.subscribe({
        groupId: `gateway-denylist-${randomUUID()}`,
        topics: [TOPICS.user],
        fromLatest: true,
        handle: async (message) => {
          let event;
          try {
            event = parseEnvelope(message.value);
          } catch {
            return; // not ours to dead-letter: the domain consumers do
          }
          if (isEvent(event, 'user.deleted')) {
            await deny(event.data.userId);
            logger.info({ userId: event.data.userId }, 'denylist: access tokens of a deleted user refused');
          }
        },
      });
    },
    async extendContext(_req, _res, context) {
      if (context.identity && (await isDenied(context.identity.userId))) throw unauthenticated('Access token revoked: the user was deleted');
    },
    async ready(): Promise<Record<string, boolean>> {
      return bus ? { denylist: subscription?.active() ?? false } : {};
    },
    async stop() {
      await subscription?.stop();
      subscription = undefined;
    },
  };
}
