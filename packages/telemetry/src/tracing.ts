/**
 * Tracing with the OpenTelemetry SDK for Node, configured by the standard OTEL_* variables:
 * spans are exported (OTLP over HTTP) only when OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (or a test hands in an exporter); otherwise no tracer
 * provider is registered and every span is the API's no-op. Sampling: OTEL_TRACES_SAMPLER /
 * OTEL_TRACES_SAMPLER_ARG (read by the SDK; default parentbased_always_on).
 *
 * Always on (cheap): the AsyncLocalStorage context manager and the W3C propagator, so a trace
 * context that arrives (traceparent from the gateway, a Kafka header) still reaches the outbox
 * row, the next Kafka header and the log lines even where this process exports nothing.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  propagation,
  ROOT_CONTEXT,
  trace,
  SpanStatusCode,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import * as pg from 'pg';
// Telemetry is a leaf: it imports no package of ours. What it reads of the configuration and of the
// keys is declared here; @crm/config's PlatformConfig and @crm/runtime's key types satisfy it.
type PlatformConfig = Readonly<{
  OTEL_SDK_DISABLED: boolean;
  OTEL_TRACES_EXPORTER: 'otlp' | 'console' | 'none' | '';
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string | undefined;
  OTEL_SERVICE_NAME?: string | undefined;
}>;
interface IdentityKeys {
  gateway: { get(kid: string): KeyObject | undefined };
  services?: { get(kid: string): KeyObject | undefined };
}
interface SigningKey {
  kid: string;
  key: KeyObject;
}

export const TRACER_NAME = '@crm/kit';
/** The header next to `traceparent` with the gateway's HMAC over it (subgraphs trust only signed trace context). */
export const TRACE_SIGNATURE_HEADER = 'x-crm-trace-signature';

export const tracer = () => trace.getTracer(TRACER_NAME);

const propagator = new W3CTraceContextPropagator();
let contextReady = false;
let provider: NodeTracerProvider | undefined;

export interface TelemetryOptions {
  /** service.name of the spans (OTEL_SERVICE_NAME wins). */
  serviceName: string;
  config: PlatformConfig;
  /** Tests: export here (synchronously) whatever the environment says. */
  spanExporter?: SpanExporter;
}

export interface Telemetry {
  tracing: boolean;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

/** Which exporter the OTEL_* variables ask for, if any. */
export function tracesExporterFrom(config: PlatformConfig): 'otlp' | 'console' | undefined {
  if (config.OTEL_SDK_DISABLED) return undefined;
  const wanted = config.OTEL_TRACES_EXPORTER;
  if (wanted === 'none') return undefined;
  if (wanted === 'console') return 'console';
  return config.OTEL_EXPORTER_OTLP_ENDPOINT || config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || wanted === 'otlp' ? 'otlp' : undefined;
}

/** OTLP/HTTP traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (the spec's rule). */
export function otlpTracesUrl(config: PlatformConfig): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT) return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** The context manager and propagator (idempotent); enough for trace ids in logs and propagation. */
export function ensureTraceContext(): void {
  if (contextReady) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagator);
  contextReady = true;
}
// On import: every service using the kit (its logger, HTTP server, consumers) gets trace context.
ensureTraceContext();

/** Once per process, before serving: registers the tracer provider when an exporter is configured. */
export function setupTelemetry(options: TelemetryOptions): Telemetry {
  ensureTraceContext();
  const kind = options.spanExporter ? 'given' : tracesExporterFrom(options.config);
  if (!kind || provider) return { tracing: provider !== undefined, shutdown: async () => undefined };
  const exporter = options.spanExporter ?? (kind === 'console' ? new ConsoleSpanExporter() : new OTLPTraceExporter({ url: otlpTracesUrl(options.config) }));
  const own = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.config.OTEL_SERVICE_NAME ?? options.serviceName }),
    spanProcessors: [kind === 'otlp' ? new BatchSpanProcessor(exporter) : new SimpleSpanProcessor(exporter)],
  });
  trace.setGlobalTracerProvider(own);
  provider = own;
  // SQL spans: the pg client the ORM uses, patched directly (also where no require hook runs, e.g. jest);
  // only inside a traced request or event (requireParentSpan), so the relay's polling stays silent.
  const pgSpans = new PgInstrumentation({ enabled: false, requireParentSpan: true, ignoreConnectSpans: true });
  pgSpans.setTracerProvider(own);
  for (const def of pgSpans.getModuleDefinitions()) if (def.name === 'pg') def.patch?.(pg);
  return {
    tracing: true,
    shutdown: async () => {
      await own.shutdown();
      if (provider === own) {
        trace.disable();
        provider = undefined;
      }
    },
  };
}

/** True when spans are recorded somewhere (a provider is registered). */
export function tracingEnabled(): boolean {
  return provider !== undefined;
}

/** The W3C traceparent of the active span, or null when there is none. */
export function currentTraceparent(ctx: Context = context.active()): string | null {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, { set: (c, k, v) => void (c[k] = v) });
  return carrier.traceparent ?? null;
}

/** A context whose remote parent is `traceparent` (ROOT_CONTEXT when missing or malformed). */
export function contextFromTraceparent(traceparent: string | null | undefined, base: Context = ROOT_CONTEXT): Context {
  if (!traceparent) return base;
  return propagator.extract(base, { traceparent }, { get: (c, k) => c[k as 'traceparent'], keys: (c) => Object.keys(c) });
}

/**
 * Headers carrying the active trace context to a subgraph, signed by the caller's own key (the
 * gateway's, or a subgraph's for a peer call): `<kid>.<ES256 signature over "trace:<traceparent>">`.
 */
export function signedTraceHeaders(signer: SigningKey): Record<string, string> {
  const traceparent = currentTraceparent();
  if (!traceparent) return {};
  const sig = sign('sha256', Buffer.from(`trace:${traceparent}`), { key: signer.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return { traceparent, [TRACE_SIGNATURE_HEADER]: `${signer.kid}.${sig}` };
}

/** The trace context a subgraph continues: the caller's, only when its signature verifies with a key it trusts. */
export function signedTraceContext(req: IncomingMessage, keys: IdentityKeys): Context | undefined {
  const traceparent = req.headers.traceparent;
  const signature = req.headers[TRACE_SIGNATURE_HEADER];
  if (typeof traceparent !== 'string' || typeof signature !== 'string') return undefined;
  const cut = signature.lastIndexOf('.');
  if (cut <= 0) return undefined;
  const kid = signature.slice(0, cut);
  const key = keys.gateway.get(kid) ?? keys.services?.get(kid);
  if (!key) return undefined;
  let valid = false;
  try {
    valid = verify('sha256', Buffer.from(`trace:${traceparent}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature.slice(cut + 1), 'base64url'));
  } catch {
    valid = false;
  }
  return valid ? contextFromTraceparent(traceparent) : undefined;
}

/**
 * Runs `fn` in a new active span; the span ends (with the error recorded) when `fn` settles.
 * Without a tracer provider the span would be the API's no-op carrying the parent's span context, so
 * when the parent is already the active context nothing is switched: `fn` runs as it is, with the
 * active span (no AsyncLocalStorage run per call, and no promise hooks switched on for the process).
 */
export function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>, parent: Context = context.active(), using: Tracer = tracer()): Promise<T> {
  if (!tracingEnabled() && parent === context.active()) return fn(trace.getSpan(parent) ?? trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return using.startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

export function failSpan(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

// ------------------------------------------------------------------ correlation id (logs)

/** Mutable per-event note (the correlation id is known only once the envelope is parsed). */
interface EventNote {
  correlationId?: string;
}
const EVENT_NOTE = createContextKey('crm.event');

/** A context carrying a fresh note for the event handled within it. */
export function withEventNote(ctx: Context): Context {
  return ctx.setValue(EVENT_NOTE, {} satisfies EventNote);
}

/** Records the correlation id of the event being handled (logs and the active span carry it). */
export function noteCorrelation(correlationId: string): void {
  const note = context.active().getValue(EVENT_NOTE) as EventNote | undefined;
  if (note) note.correlationId = correlationId;
  trace.getActiveSpan()?.setAttribute('crm.correlation_id', correlationId);
}

/** pino mixin: trace_id, span_id and the event's correlation_id of the active context. */
export function logContext(): Record<string, string> {
  const ctx = context.active();
  const out: Record<string, string> = {};
  const span = trace.getSpanContext(ctx);
  if (span && trace.isSpanContextValid(span)) {
    out.trace_id = span.traceId;
    out.span_id = span.spanId;
  }
  const note = ctx.getValue(EVENT_NOTE) as EventNote | undefined;
  if (note?.correlationId) out.correlation_id = note.correlationId;
  return out;
}
