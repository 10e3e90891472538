/**
 * The gateway's features, in order. Each is its own module; add one line per feature here. The
 * shapes they share (GatewayFeature, FeatureOptions, GatewayDeps) live in ./feature.ts, which
 * imports no feature: features import it, never this list.
 */
import { Revocations } from '../revocations';
import { subgraphUrls } from '../compose';
import type { FeatureOptions, GatewayFeature } from './feature';
import { useLandingPage } from './landing-page';
import { useExplorer } from './explorer';
import { useResetPage } from './reset-page';
import { useSecurityHeaders } from './security-headers';
import { useCors } from './cors';
import { useOperationLimits } from './operation-limits';
import { usePersistedDocuments } from './persisted-documents';
import { useTokenDenylist } from './token-denylist';
import { useRateLimits } from './rate-limit';
import { useLoginProtection } from './login-protection';
import { usePasswordProtection } from './password-protection';
import { useSubscriptions } from './subscriptions';
import { useInboundDedupe } from './inbound-dedupe';
import { useTelemetry } from './telemetry';

export function gatewayFeatures(base: Omit<FeatureOptions, 'revocations'>): GatewayFeature[] {
  const options: FeatureOptions = {
    ...base,
    revocations: new Revocations(base.config, base.logger, { authUrl: () => subgraphUrls(base.supergraphSdl?.() ?? '').auth }),
  };
  return [
    useTelemetry(),
    useSecurityHeaders(options),
    useCors(options),
    useLandingPage(options),
    useExplorer(options),
    useResetPage(),
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

export type { FeatureOptions, GatewayFeature, GatewayDeps } from './feature';
