/**
 * GraphQL telemetry shared by the gateway and every subgraph:
 * - the server span of each POST /graphql (a subgraph continues the gateway's signed trace context),
 *   renamed after the operation once known, with parse and validate child spans;
 * - requests, errors and latency per operation type and name (names bounded, see metrics.ts);
 * - subgraphs: one span per root resolver (Query/Mutation fields, entity references), so SQL and
 *   staged events hang under the resolver that ran them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { bounded, graphqlDuration, graphqlErrors, graphqlRequests } from './metrics';
import { ensureTraceContext, tracer, tracingEnabled, withSpan } from './tracing';

/** Runs an HTTP request to `path` inside a SERVER span (other paths: no span). */
export function inServerSpan(req: IncomingMessage, res: ServerResponse, service: string, path: string, parent: Context | undefined, serve: () => Promise<void>): Promise<void> {
  ensureTraceContext();
  // Nothing to record and no trace to continue: no span, no context switch.
  if ((!parent && !tracingEnabled()) || (req.url ?? '').split('?')[0] !== path) return serve();
  return tracer().startActiveSpan(
    `${req.method ?? 'GET'} ${path}`,
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? 'GET', 'url.path': path, 'crm.service': service } },
    parent ?? ROOT_CONTEXT,
    async (span) => {
      try {
        await serve();
      } finally {
        span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
    },
  );
}

function childSpan(name: string, parent: Span | undefined): (err?: unknown) => void {
  if (!parent?.isRecording()) return () => undefined;
  const span = tracer().startSpan(name, {}, trace.setSpan(ROOT_CONTEXT, parent));
  return (err?: unknown) => {
    if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    span.end();
  };
}

/**
 * Apollo Server plugin: operation metrics, and the operation on the request's server span.
 * `internal` marks operations the service runs for itself (not counted, no spans of their own).
 */
export function graphqlTelemetryPlugin<C extends BaseContext>(service: string, internal?: (context: C) => boolean): ApolloServerPlugin<C> {
  return {
    async requestDidStart({ contextValue }) {
      if (internal?.(contextValue)) return {};
      const started = performance.now();
      const span = trace.getActiveSpan();
      let type = 'unknown';
      let name = '(anonymous)';
      return {
        async parsingDidStart() {
          const end = childSpan('graphql.parse', span);
          return async (err) => end(err);
        },
        async validationDidStart() {
          const end = childSpan('graphql.validate', span);
          return async (errors) => end(errors?.[0]);
        },
        async didResolveOperation({ operation, operationName }) {
          type = operation?.operation ?? 'unknown';
          name = bounded('operation_name', operationName);
          if (span?.isRecording()) {
            span.updateName(`${type} ${operationName ?? '(anonymous)'}`);
            span.setAttributes({ 'graphql.operation.type': type, 'graphql.operation.name': operationName ?? '' });
          }
        },
        async willSendResponse({ response, errors }) {
          const labels = { service, operation_type: type, operation_name: name };
          const series = seriesOf(labels);
          series.requests.inc();
          series.duration.observe((performance.now() - started) / 1000);
          const bodyErrors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          const first = errors?.[0] ?? bodyErrors?.[0];
          if (first) {
            const code = bounded('error_code', String(first.extensions?.code ?? 'INTERNAL_SERVER_ERROR'), 'INTERNAL_SERVER_ERROR');
            graphqlErrors.inc({ ...labels, code });
            span?.setAttribute('graphql.error.code', code);
          }
        },
      };
    },
  };
}

/** Bound children of the request counter and histogram per label set (prom-client hashes labels on every call otherwise). */
const bound = new Map<string, { requests: { inc(): void }; duration: { observe(v: number): void } }>();
function seriesOf(labels: { service: string; operation_type: string; operation_name: string }) {
  const key = `${labels.service}\0${labels.operation_type}\0${labels.operation_name}`;
  let series = bound.get(key);
  if (!series) bound.set(key, (series = { requests: graphqlRequests.labels(labels), duration: graphqlDuration.labels(labels) }));
  return series;
}

type ResolverFn = (parent: unknown, args: unknown, context: unknown, info: unknown) => unknown;

/**
 * Wraps a subgraph's root resolvers (Query, Mutation, Subscription fields and every
 * __resolveReference) in spans named `resolve <Type>.<field>`; a no-op unless tracing is on.
 */
export function traceResolvers<R extends object>(service: string, resolvers: R): R {
  if (!tracingEnabled()) return resolvers;
  const out: Record<string, unknown> = {};
  for (const [typeName, fields] of Object.entries(resolvers as Record<string, unknown>)) {
    if (!fields || typeof fields !== 'object') {
      out[typeName] = fields;
      continue;
    }
    const root = typeName === 'Query' || typeName === 'Mutation';
    const wrapped: Record<string, unknown> = {};
    for (const [field, fn] of Object.entries(fields as Record<string, unknown>)) {
      wrapped[field] = typeof fn === 'function' && (root || field === '__resolveReference') ? wrapResolver(`resolve ${typeName}.${field}`, service, fn as ResolverFn) : fn;
    }
    out[typeName] = wrapped;
  }
  return out as R;
}

function wrapResolver(name: string, service: string, fn: ResolverFn): ResolverFn {
  return (parent, args, ctx, info) => withSpan(name, { attributes: { 'crm.service': service } }, async () => fn(parent, args, ctx, info));
}
