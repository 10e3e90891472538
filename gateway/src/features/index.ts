/** The gateway's features, in order. Each is its own module; add one line per feature here. */
import type { EventBus, Logger, PlatformConfig } from '@crm/kit';
import type { GatewayFeature } from './feature';
import { useLandingPage } from './landing-page';

export interface FeatureOptions {
  config: PlatformConfig;
  logger: Logger;
  bus: EventBus | undefined;
}

export function gatewayFeatures(options: FeatureOptions): GatewayFeature[] {
  return [useLandingPage(options)];
}

export type { GatewayFeature, GatewayDeps } from './feature';
