/** Telemetry: traces (OpenTelemetry), metrics (prom-client, /metrics), logging and its correlation. README "Telemetry". */
export * from './tracing';
export * from './metrics';
export * from './graphql';
export * from './logger';
