/** Telemetry: traces (OpenTelemetry), metrics (prom-client, /metrics), log correlation. README "Telemetry". */
export * from './tracing';
export * from './metrics';
export * from './graphql';
export * from './events';
