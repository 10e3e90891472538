/**
 * How the gateway calls subgraphs. Every fetch carries the caller's identity, signed with
 * the gateway's own private key (GATEWAY_SIGNING_KEY); subgraphs refuse anything unsigned, so the gateway is the only door.
 *
 * This replaces Apollo's RemoteGraphQLDataSource on the hot path (measured in bench/gateways):
 * - one pooled keep-alive undici client per subgraph instead of node-fetch;
 * - every fetch is signed for this subgraph, the method and the exact body (kit identity.ts: a
 *   header captured on the way cannot be replayed elsewhere or with another operation), and
 *   carries only the kit's allow-listed headers (kit subgraph-call.ts), none of the client's;
 * - every fetch has a deadline (SUBGRAPH_TIMEOUT_MS): a subgraph that hangs gives the operation a
 *   SERVICE_UNAVAILABLE error (reason SUBGRAPH_TIMEOUT) instead of holding it for undici's 300 s;
 * - identical query fetches in flight at once (same subgraph, document, variables and identity)
 *   share one HTTP round trip, and the engine's callers one parsed answer (copy on write in the
 *   engine); Apollo's interface (`process`) parses a copy per caller. Mutations never share.
 */
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { GraphQLError } from 'graphql';
import { Agent } from 'undici';
import { isTimeout, subgraphCallHeaders, subgraphTimeout, type Identity, type SigningKey } from '@crm/runtime';
import { subgraphFetchDuration, subgraphFetchErrors } from '@crm/telemetry';

export interface GatewayContext {
  identity: Identity | null;
  /** The access token's `tv` claim (revocation checks). */
  tokenVersion?: number;
}

interface SubgraphResponse {
  status: number;
  contentType: string;
  body: string;
  /** The body parsed once for every caller that promised not to modify it (processShared). */
  parsed?: GatewayGraphQLResponse;
}

/** A subgraph's answer, and whether other operations may hold the very same objects (then read-only). */
export interface SharedResponse {
  response: GatewayGraphQLResponse;
  shared: boolean;
}

export interface SubgraphClientOptions {
  /** The subgraph's name (supergraph.yaml): metrics, and signatures are bound to it. */
  name: string;
  /** The gateway's own key (GATEWAY_SIGNING_KEY): the identity it forwards is signed with it. */
  signer: SigningKey;
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
  /** In-flight shareable fetches by caller identity, then by body (no concatenated key string per fetch). */
  private readonly inFlight = new Map<string, Map<string, Promise<SubgraphResponse>>>();
  /** Per query document: the body's JSON around the variables, and whether it may be shared. */
  private readonly bodies = new Map<string, { head: string; shareable: boolean }>();

  private readonly origin: string;
  private readonly path: string;

  constructor(
    readonly url: string,
    private readonly options: SubgraphClientOptions,
  ) {
    const parsed = new URL(url);
    this.origin = parsed.origin;
    this.path = parsed.pathname;
  }

  /**
   * The request body, byte for byte `JSON.stringify({ query, variables, operationName })`; the query's
   * JSON text (escaped once per document, not per fetch) is kept for the plan's few documents.
   */
  private body(query: string, variables: Record<string, unknown> | undefined, operationName: string | undefined): { body: string; shareable: boolean } {
    let known = this.bodies.get(query);
    if (!known) {
      if (this.bodies.size >= 1000) this.bodies.clear();
      known = { head: `{"query":${JSON.stringify(query)}`, shareable: this.options.dedupe && !/^\s*mutation\b/.test(query) };
      this.bodies.set(query, known);
    }
    const vars = variables === undefined ? undefined : JSON.stringify(variables);
    const name = operationName === undefined ? undefined : JSON.stringify(operationName);
    const body = `${known.head}${vars === undefined ? '' : `,"variables":${vars}`}${name === undefined ? '' : `,"operationName":${name}`}}`;
    return { body, shareable: known.shareable };
  }

  /** Apollo's interface: every caller gets its own parsed copy, which it may modify. */
  async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    return (await this.fetch(options, false)).response;
  }

  /**
   * For the engine (./engine/plan-executor.ts): the answer of a fetch shared with identical fetches
   * in flight is parsed once and the same objects go to every caller (`shared: true`); the caller
   * must not modify them (the engine copies what it writes into). Unshared fetches: a private copy.
   */
  processShared(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<SharedResponse> {
    return this.fetch(options, true);
  }

  private async fetch({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>, readOnly: boolean): Promise<SharedResponse> {
    if (!request.query) throw new Error('Missing query');
    const identity = (context as Partial<GatewayContext>).identity ?? null;
    const { body, shareable } = this.body(request.query, request.variables, request.operationName);

    let pending: Promise<SubgraphResponse> | undefined;
    let sharing: Map<string, Promise<SubgraphResponse>> | undefined;
    const identityKey = shareable && identity ? `${identity.userId}|${identity.role}|${identity.email}` : '';
    if (shareable) {
      sharing = this.inFlight.get(identityKey);
      if (!sharing) this.inFlight.set(identityKey, (sharing = new Map()));
      pending = sharing.get(body);
    }
    if (!pending) {
      // The trace context (the gateway.fetch span) goes with its own signature: see kit telemetry/tracing.ts.
      // The allow-listed headers only (kit subgraph-call.ts): nothing of the client's own request.
      pending = this.send(body, subgraphCallHeaders(identity, this.options.signer, this.options.name, body));
      if (sharing) {
        const map = sharing;
        map.set(body, pending);
        const done = () => {
          map.delete(body);
          if (map.size === 0 && this.inFlight.get(identityKey) === map) this.inFlight.delete(identityKey);
        };
        pending.then(done, done);
      }
    }
    const subgraph = this.options.name ?? 'unknown';
    const started = performance.now();
    let response: GatewayGraphQLResponse;
    const shared = readOnly && sharing !== undefined;
    try {
      const answer = await pending;
      response = shared ? (answer.parsed ??= toGraphQLResponse(answer)) : toGraphQLResponse(answer);
    } catch (err) {
      subgraphFetchErrors.inc({ subgraph, kind: err instanceof GraphQLError && err.extensions.reason === 'SUBGRAPH_TIMEOUT' ? 'timeout' : 'network' });
      throw err;
    } finally {
      subgraphFetchDuration.observe({ subgraph }, (performance.now() - started) / 1000);
    }
    if (response.errors?.length) subgraphFetchErrors.inc({ subgraph, kind: 'graphql' });
    return { response, shared };
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
