/**
 * Telemetry of the gateway's operations (README "Telemetry"): requests, errors and latency per
 * operation, and the operation on the request's span. Live subscription resolutions are the
 * gateway's own work: they are not counted as requests (their spans hang under the delivery).
 */
import { graphqlTelemetryPlugin } from '@crm/telemetry';
import type { GatewayContext } from '../datasource';
import type { GatewayFeature } from './feature';

export function useTelemetry(): GatewayFeature {
  return {
    name: 'telemetry',
    apolloPlugins: [graphqlTelemetryPlugin<GatewayContext>('gateway', (ctx) => ctx.liveSubscription === true)],
  };
}
