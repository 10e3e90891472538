/** The gateway's features, in order. Each is its own module; add one line per feature here. */
import type { Redis } from 'ioredis';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { EventBus } from '@crm/events';
import type { Logger } from '@crm/telemetry';
import type { PlatformConfig } from '@crm/config';
import { Revocations } from '../revocations';
import { subgraphUrls } from '../compose';
import type { GatewayFeature } from './feature';
import { useLandingPage } from './landing-page';
import { useExplorer } from './explorer';
import { useSecurityHeaders } from './security-headers';
import { useCors } from './cors';
import { useOperationLimits } from './operation-limits';
import { usePersistedDocuments } from './persisted-documents';
import { useTokenDenylist } from './token-denylist';
import { createRateBudget, useRateLimits } from './rate-limit';
import { useLoginProtection } from './login-protection';
import { usePasswordProtection } from './password-protection';
import { useSubscriptions } from './subscriptions';
import { useInboundDedupe } from './inbound-dedupe';
import { useTelemetry } from './telemetry';

export interface FeatureOptions {
  config: PlatformConfig;
  logger: Logger;
  bus: EventBus | undefined;
  /** Shared Redis connection when REDIS_URL is set (outage policy in ../redis.ts). */
  redis?: Redis;
  /** Revoked access tokens, shared by HTTP (token-denylist) and WebSocket (subscriptions). */
  revocations: Revocations;
  /** The current supergraph SDL (subgraph URLs, which subgraph resolves which field). */
  supergraphSdl?: () => string;
  /** The rate-limit budget, charged by HTTP operations and by WebSocket subscribes. */
  rateBudget: RateLimiterAbstract;
}

export function gatewayFeatures(base: Omit<FeatureOptions, 'revocations' | 'rateBudget'>): GatewayFeature[] {
  const options: FeatureOptions = {
    ...base,
    revocations: new Revocations(base.config, base.logger, { authUrl: () => subgraphUrls(base.supergraphSdl?.() ?? '').auth }),
    rateBudget: createRateBudget(base.config, base.redis),
  };
  return [
    useTelemetry(),
    useSecurityHeaders(options),
    useCors(options),
    useLandingPage(options),
    useExplorer(options),
    useOperationLimits(options),
    usePersistedDocuments(options),
    useTokenDenylist(options),
    useRateLimits(options),
    useLoginProtection(options),
    usePasswordProtection(options),
    useSubscriptions(options),
    useInboundDedupe(options),
  ];
}

export type { GatewayFeature, GatewayDeps } from './feature';
