/** The gateway's features, in order. Each is its own module; add one line per feature here. */
import type { Redis } from 'ioredis';
import type { EventBus, Logger, PlatformConfig } from '@crm/kit';
import type { GatewayFeature } from './feature';
import { useLandingPage } from './landing-page';
import { useSecurityHeaders } from './security-headers';
import { useCors } from './cors';
import { useOperationLimits } from './operation-limits';
import { usePersistedDocuments } from './persisted-documents';
import { useTokenDenylist } from './token-denylist';
import { useRateLimits } from './rate-limit';
import { useLoginProtection } from './login-protection';
import { useSubscriptions } from './subscriptions';
import { useTelemetry } from './telemetry';

export interface FeatureOptions {
  config: PlatformConfig;
  logger: Logger;
  bus: EventBus | undefined;
  /** Shared Redis connection when REDIS_URL is set (outage policy in ../redis.ts). */
  redis?: Redis;
}

export function gatewayFeatures(options: FeatureOptions): GatewayFeature[] {
  return [
    useTelemetry(),
    useSecurityHeaders(options),
    useCors(options),
    useLandingPage(options),
    useOperationLimits(options),
    usePersistedDocuments(options),
    useTokenDenylist(options),
    useRateLimits(options),
    useLoginProtection(options),
    useSubscriptions(options),
  ];
}

export type { GatewayFeature, GatewayDeps } from './feature';
