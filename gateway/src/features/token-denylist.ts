/**
 * Revoked access tokens stop working at once instead of when they expire. Every gateway replica
 * consumes user.events with its own consumer group and records in ../revocations.ts:
 *  - user.deleted: every token of the user;
 *  - user.updated / user.logout with a `tokenVersion`: tokens with a lower `tv` claim (a role or
 *    active-status change, a logout).
 * With Redis the records are shared (a replica started later reads them) and the consumer starts
 * at the latest offset; without Redis it reads user.events from the beginning (retention is far
 * longer than ACCESS_TOKEN_TTL_SECONDS). A request with a revoked token gets UNAUTHENTICATED (401);
 * the subscriptions feature closes the user's sockets (4403).
 */
import { randomUUID } from 'node:crypto';
import { TOPICS, isEvent, parseEnvelope, type Subscription } from '@crm/kit';
import { unauthenticated } from '../auth';
import type { GatewayFeature } from './feature';
import type { FeatureOptions } from '.';

export function useTokenDenylist({ logger, bus, redis, revocations }: FeatureOptions): GatewayFeature {
  let subscription: Subscription | undefined;

  return {
    name: 'token-denylist',
    async attach() {
      if (!bus) return;
      subscription = await bus.subscribe({
        groupId: `gateway-denylist-${randomUUID()}`,
        topics: [TOPICS.user],
        fromLatest: redis !== undefined,
        handle: async (message) => {
          let event;
          try {
            event = parseEnvelope(message.value);
          } catch {
            return; // not ours to dead-letter: the domain consumers do
          }
          if (isEvent(event, 'user.deleted')) {
            await revocations.revoke(event.data.userId, { deleted: true });
            logger.info({ userId: event.data.userId }, 'revocations: access tokens of a deleted user refused');
          } else if ((isEvent(event, 'user.updated') || isEvent(event, 'user.logout')) && event.data.tokenVersion !== undefined) {
            await revocations.revoke(event.data.userId, { minVersion: event.data.tokenVersion });
          }
        },
      });
    },
    async extendContext(_req, _res, context) {
      if (!context.identity) return;
      const revoked = await revocations.revoked(context.identity.userId, context.tokenVersion ?? 0);
      if (revoked) throw unauthenticated(revoked);
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
