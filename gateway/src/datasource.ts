/**
 * How the gateway calls subgraphs. Every fetch carries the caller's identity, signed with
 * INTERNAL_SECRET; subgraphs refuse anything unsigned, so the gateway is the only door.
 *
 * This replaces Apollo's RemoteGraphQLDataSource on the hot path (measured in bench/gateways):
 * - one pooled keep-alive undici client per subgraph instead of node-fetch;
 * - every fetch is signed for this subgraph, the method and the exact body (kit identity.ts: a
 *   header captured on the way cannot be replayed elsewhere or with another operation), and
 *   carries only the kit's allow-listed headers (kit subgraph-call.ts), none of the client's;
 * - every fetch has a deadline (SUBGRAPH_TIMEOUT_MS): a subgraph that hangs gives the operation a
 *   SERVICE_UNAVAILABLE error (reason SUBGRAPH_TIMEOUT) instead of holding it for undici's 300 s;
 * - identical query fetches in flight at once (same subgraph, document, variables and identity)
 *   share one HTTP round trip; each caller parses its own copy of the body. Mutations never share.
 */
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { GraphQLError } from 'graphql';
import { Agent } from 'undici';
import { isTimeout, subgraphCallHeaders, subgraphFetchDuration, subgraphFetchErrors, subgraphTimeout, type Identity } from '@crm/kit';

export interface GatewayContext {
  identity: Identity | null;
  /** The access token's `tv` claim (revocation checks). */
  tokenVersion?: number;
  /** Set on the gateway's own resolution of a subscription event for a subscriber (not a client request). */
  liveSubscription?: boolean;
}

interface SubgraphResponse {
  status: number;
  contentType: string;
  body: string;
}

export interface SubgraphClientOptions {
  /** The subgraph's name (supergraph.yaml): metrics, and signatures are bound to it. */
  name: string;
  secret: string;
  /** Share identical in-flight query fetches (SUBGRAPH_DEDUPE). */
  dedupe: boolean;
  agent: Agent;
  /** Longest wait for one fetch (SUBGRAPH_TIMEOUT_MS); then the operation gets SERVICE_UNAVAILABLE (reason SUBGRAPH_TIMEOUT). */
  timeoutMs: number;
}

export function createSubgraphAgent(): Agent {
  return new Agent({ connections: 128, pipelining: 1, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });
}

export class SubgraphClient implements GraphQLDataSource<GatewayContext> {
  private readonly inFlight = new Map<string, Promise<SubgraphResponse>>();

  private readonly origin: string;
  private readonly path: string;

  constructor(readonly url: string, private readonly options: SubgraphClientOptions) {
    const parsed = new URL(url);
    this.origin = parsed.origin;
    this.path = parsed.pathname;
  }

  async process({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    if (!request.query) throw new Error('Missing query');
    const identity = (context as Partial<GatewayContext>).identity ?? null;
    const body = JSON.stringify({ query: request.query, variables: request.variables, operationName: request.operationName });
    const identityKey = identity ? `${identity.userId}|${identity.role}|${identity.email}` : '';
    const shareable = this.options.dedupe && !/^\s*mutation\b/.test(request.query);
    const key = shareable ? `${identityKey}\n${body}` : undefined;

    let pending = key ? this.inFlight.get(key) : undefined;
    if (!pending) {
      // The trace context (the gateway.fetch span) goes with its own signature: see kit telemetry/tracing.ts.
      // The allow-listed headers only (kit subgraph-call.ts): nothing of the client's own request.
      pending = this.send(body, subgraphCallHeaders(identity, this.options.secret, this.options.name, body));
      if (key) {
        this.inFlight.set(key, pending);
        void pending.finally(() => this.inFlight.delete(key)).catch(() => undefined);
      }
    }
    const subgraph = this.options.name ?? 'unknown';
    const started = performance.now();
    let response: GatewayGraphQLResponse;
    try {
      response = toGraphQLResponse(await pending);
    } catch (err) {
      subgraphFetchErrors.inc({ subgraph, kind: err instanceof GraphQLError && err.extensions.reason === 'SUBGRAPH_TIMEOUT' ? 'timeout' : 'network' });
      throw err;
    } finally {
      subgraphFetchDuration.observe({ subgraph }, (performance.now() - started) / 1000);
    }
    if (response.errors?.length) subgraphFetchErrors.inc({ subgraph, kind: 'graphql' });
    return response;
  }

  private async send(body: string, headers: Record<string, string>): Promise<SubgraphResponse> {
    const { timeoutMs, name } = this.options;
    try {
      const res = await this.options.agent.request({ origin: this.origin, path: this.path, method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.body.text();
      const contentType = String(res.headers['content-type'] ?? '');
      return { status: res.statusCode, contentType, body: text };
    } catch (err) {
      throw isTimeout(err) ? subgraphTimeout(name, timeoutMs) : err;
    }
  }
}

function toGraphQLResponse(res: SubgraphResponse): GatewayGraphQLResponse {
  let parsed: unknown;
  if (res.contentType.startsWith('application/json') || res.contentType.startsWith('application/graphql-response+json')) {
    try {
      parsed = JSON.parse(res.body);
    } catch {
      parsed = undefined;
    }
  }
  // A subgraph's own GraphQL errors (also on 4xx, e.g. a refused signature) pass through with their codes.
  if (typeof parsed === 'object' && parsed !== null && ('data' in parsed || 'errors' in parsed)) return parsed as GatewayGraphQLResponse;
  throw new GraphQLError(`${res.status}: subgraph answered without a GraphQL response`, {
    extensions: { code: res.status === 401 ? 'UNAUTHENTICATED' : res.status === 403 ? 'FORBIDDEN' : 'INTERNAL_SERVER_ERROR' },
  });
}
