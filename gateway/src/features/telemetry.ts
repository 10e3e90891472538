/**
 * Telemetry of the gateway's operations (README "Telemetry"): requests, errors and latency per
 * operation, and the operation on the request's span; a WebSocket subscribe is counted as the
 * subscription operation it is. Live subscription resolutions are the gateway's own work: they go
 * to the executor directly (../pipeline.ts), never through these plugins, so they are not counted
 * as requests (their spans hang under the delivery).
 */
import { graphqlTelemetryPlugin } from '@crm/telemetry';
import type { GatewayContext } from '../datasource';
import type { GatewayFeature } from './feature';

export function useTelemetry(): GatewayFeature {
  return {
    name: 'telemetry',
    apolloPlugins: [graphqlTelemetryPlugin<GatewayContext>('gateway')],
  };
}
