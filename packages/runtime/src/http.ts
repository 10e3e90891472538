/**
 * Apollo Server on plain node:http (Apollo Server 5's integration API), shared by the gateway
 * and every subgraph: body size limit (413), JSON parse errors as 400, health routes, and a
 * hook for whatever must run before GraphQL (rate limits, CORS) — no framework on the hot path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type BaseContext } from '@apollo/server';
import type { Context } from '@opentelemetry/api';
import { inServerSpan } from '@crm/telemetry';
import { METRICS_PATH, metricsAccessFor, serveMetrics, type MetricsAccess } from '@crm/telemetry';

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface GraphQLHttpOptions<C extends BaseContext> {
  apollo: ApolloServer<C>;
  context: (req: IncomingMessage, res: ServerResponse) => Promise<C>;
  maxBodyBytes: number;
  path?: string;
  routes?: Record<string, Route>;
  /** Runs before every request; return true when it has answered the request itself. */
  before?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
  onError?: (err: unknown) => void;
  /** Names the server spans (telemetry). */
  service?: string;
  /** The trace context a request continues (subgraphs: the gateway's, when signed); none: a new trace. */
  traceContext?: (req: IncomingMessage) => Context | undefined;
  /** Who may read /metrics (METRICS_TOKEN; closed in production without one). */
  metrics?: MetricsAccess;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

/**
 * `/ready`: 503 "not ready" when a `required` check fails; 200 "degraded" when only an `optional`
 * one does (e.g. Kafka away: the service still serves); 200 "ready" otherwise. Every check is listed.
 */
export function sendReadiness(
  res: ServerResponse,
  service: string,
  required: Record<string, boolean>,
  optional: Record<string, boolean>,
  extra: Record<string, unknown> = {},
): void {
  const ok = Object.values(required).every(Boolean);
  const whole = Object.values(optional).every(Boolean);
  const status = !ok ? 'not ready' : whole ? 'ready' : 'degraded';
  sendJson(res, ok ? 200 : 503, { status, service, checks: { ...required, ...optional }, ...extra });
}

export function sendGraphQLError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ message, extensions: { code } }] }, headers);
}

const rawBodies = new WeakMap<IncomingMessage, string>();

/** The raw body of a request the GraphQL handler has read ('' before that, or for GET). */
export function rawBodyOf(req: IncomingMessage): string {
  return rawBodies.get(req) ?? '';
}

export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limit} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function createGraphQLHandler<C extends BaseContext>(options: GraphQLHttpOptions<C>) {
  const path = options.path ?? '/graphql';
  const service = options.service ?? 'graphql';
  const metricsAccess = metricsAccessFor(options.metrics);
  const metrics: Route = async (req, res) => {
    const access = metricsAccess(req.headers.authorization);
    if (access === 404) return sendJson(res, 404, { error: 'not found' });
    if (access === 401) return sendJson(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer' });
    await serveMetrics(req, res);
  };
  return (req: IncomingMessage, res: ServerResponse): Promise<void> => inServerSpan(req, res, service, path, options.traceContext?.(req), () => handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (options.before && (await options.before(req, res))) return;
      const url = new URL(req.url ?? '/', 'http://localhost');
      const route = options.routes?.[url.pathname] ?? (url.pathname === METRICS_PATH ? metrics : undefined);
      if (route) return void (await route(req, res));
      if (url.pathname !== path) return sendJson(res, 404, { error: 'not found' });

      const headers = new HeaderMap();
      for (const [key, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
      }
      let body: unknown = undefined;
      if (req.method === 'POST') {
        const raw = await readBody(req, options.maxBodyBytes);
        rawBodies.set(req, raw); // signature checks bind to the exact body (identity.ts)
        const type = headers.get('content-type') ?? '';
        if (type.includes('application/json') || type.includes('application/graphql-response+json')) {
          try {
            body = raw.length ? JSON.parse(raw) : undefined;
          } catch {
            throw new HttpError(400, 'BAD_REQUEST', 'Request body is not valid JSON');
          }
        } else {
          body = raw;
        }
      }
      const response = await options.apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method: (req.method ?? 'GET').toUpperCase(), headers, search: url.search, body },
        context: () => options.context(req, res),
      });
      for (const [key, value] of response.headers) res.setHeader(key, value);
      res.statusCode = response.status ?? 200;
      if (response.body.kind === 'complete') {
        res.end(response.body.string);
      } else {
        for await (const chunk of response.body.asyncIterator) res.write(chunk);
        res.end();
      }
    } catch (err) {
      if (err instanceof HttpError) return sendGraphQLError(res, err.status, err.code, err.message);
      options.onError?.(err);
      if (!res.headersSent) sendGraphQLError(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error');
      else res.end();
    }
  }
}

/** Deadlines on receiving a request (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS). */
export interface RequestDeadlines {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * An HTTP server on `port`. A client gets `headersTimeoutMs` for its headers and `requestTimeoutMs`
 * for its whole request (then 408 and the connection closes; Node checks them every second here, not
 * every 30 s), so slow clients cannot hold connections; the time to answer is not limited by them.
 */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
  port: number,
  host: string,
  deadlines: RequestDeadlines,
): Promise<{ server: Server; port: number }> {
  const requestTimeout = deadlines.requestTimeoutMs;
  const headersTimeout = Math.min(deadlines.headersTimeoutMs, requestTimeout); // Node refuses a headers deadline after the request's
  const server = createServer(
    { keepAliveTimeout: 65_000, headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) },
    (req, res) => void handler(req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : port };
}

/**
 * Graceful stop: the server stops accepting connections at once (a new one is refused), requests
 * in flight finish — up to `graceMs` — and each keep-alive connection is closed as soon as it is
 * idle; whatever is still open after the grace period is cut.
 */
export function closeServer(server: Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    let sweep: NodeJS.Timeout | undefined;
    let cut: NodeJS.Timeout | undefined;
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
    // A connection whose response just ended stays open (keep-alive) until swept.
    sweep = setInterval(() => server.closeIdleConnections(), 50);
    cut = setTimeout(() => {
      clearInterval(sweep);
      server.closeAllConnections();
    }, graceMs);
  });
}
