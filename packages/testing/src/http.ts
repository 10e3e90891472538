/** HTTP helpers of the tests: the one raw request / GraphQL POST, and a recording stand-in subgraph. */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';

export interface RawResult {
  status: number;
  headers: Headers;
  /** The body as sent (for answers that are not JSON). */
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: { data?: any; errors?: { message: string; extensions?: Record<string, any> }[] };
}

/** Any HTTP request to a gateway or subgraph URL (hostile bodies, methods, paths), the raw response kept. */
export async function rawRequest(
  url: string,
  body: string | undefined,
  options: { method?: string; headers?: Record<string, string>; path?: string; search?: string } = {},
): Promise<RawResult> {
  const target = new URL(url);
  if (options.path) target.pathname = options.path;
  if (options.search) target.search = options.search;
  const res = await fetch(target, {
    method: options.method ?? 'POST',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    body,
  });
  const text = await res.text();
  let parsed: RawResult['body'];
  try {
    parsed = JSON.parse(text) as RawResult['body'];
  } catch {
    parsed = undefined as unknown as RawResult['body'];
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

export interface RawGraphQLOptions {
  variables?: Record<string, unknown>;
  token?: string;
  /** The client's address, as a proxy in front of the gateway would report it (X-Forwarded-For). */
  ip?: string;
  /** More request fields: extensions (persisted queries), operationName. */
  extra?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** The one GraphQL POST of the tests, with the raw response kept (status, headers, body). `query` may be left out (persisted queries). */
export function rawGraphQL(url: string, query: string | undefined, options: RawGraphQLOptions = {}): Promise<RawResult> {
  return rawRequest(url, JSON.stringify({ query, variables: options.variables, ...options.extra }), {
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.ip ? { 'x-forwarded-for': options.ip } : {}),
      ...options.headers,
    },
  });
}

export interface RecordedRequest {
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A stand-in subgraph on node:http for tests of what is sent to subgraphs: it records every
 * request (headers, body) and lets `respond` answer — or not, to play a subgraph that hangs.
 */
export async function startRecordingServer(
  respond: (request: RecordedRequest, res: ServerResponse) => void,
): Promise<{ url: string; received: RecordedRequest[]; close(): Promise<void> }> {
  const received: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(request);
      respond(request, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/graphql`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Answers a recorded request with a GraphQL response of `data`. */
export function answerData(res: ServerResponse, data: Record<string, unknown>): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ data }));
}
