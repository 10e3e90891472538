/**
 * A gateway feature is a small `useX(options)` factory (the Guild's plugin style) returning the
 * hooks it needs: Apollo plugins, an HTTP step before GraphQL, context additions, something to
 * attach to the listening server (WebSocket), readiness checks and shutdown. server.ts only
 * wires the list from ./index.ts.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ApolloGateway, GraphQLDataSource } from '@apollo/gateway';
import type { ApolloServerOptions, ApolloServerPlugin, GraphQLRequest } from '@apollo/server';
import type { GraphQLError, GraphQLSchema, ValidationRule } from 'graphql';
import type { Redis } from 'ioredis';
import type { PlatformConfig } from '@crm/config';
import type { EventBus } from '@crm/events';
import type { Logger } from '@crm/telemetry';
import type { GatewayContext } from '../datasource';
import type { Checked, CheckOptions, InternalExecutor, InternalOperation } from '../pipeline';
import type { Revocations } from '../revocations';

/** What every feature factory (`useX(options)`) is given; ./index.ts builds it once for the list. */
export interface FeatureOptions {
  config: PlatformConfig;
  logger: Logger;
  bus: EventBus | undefined;
  /** Shared Redis connection when REDIS_URL is set (outage policy in ../redis.ts). */
  redis?: Redis;
  /** Revoked access tokens, shared by HTTP (token-denylist) and WebSocket (subscriptions). */
  revocations: Revocations;
  /** The current supergraph SDL (subgraph URLs, which subgraph resolves which field). */
  supergraphSdl?: () => string;
}

export interface GatewayDeps {
  config: PlatformConfig;
  logger: Logger;
  gateway: ApolloGateway;
  /** The gateway's client of a subgraph (signed identity, pooling, timeouts), as its query plans use it; undefined until that subgraph is loaded. */
  subgraphClient(name: string): GraphQLDataSource | undefined;
  /** The API schema clients see (current supergraph). */
  apiSchema(): GraphQLSchema | undefined;
  /** Builds the context for an identity the same way HTTP requests get it. */
  contextFor(req: IncomingMessage | undefined, identity: GatewayContext['identity']): Promise<GatewayContext>;
  /**
   * A client operation that does not come by HTTP (a WebSocket subscribe) through the very rules HTTP
   * operations go through (../pipeline.ts), without running it: the checked document or the client's errors.
   */
  checkOperation(
    request: Pick<GraphQLRequest, 'query' | 'operationName' | 'variables' | 'extensions'>,
    context: GatewayContext,
    options?: CheckOptions,
  ): Promise<Checked | GraphQLError[]>;
  /** The gateway's own operation, straight to the executor: no client rule applies (../pipeline.ts). */
  executeInternal(op: InternalOperation, variables: Record<string, unknown>, context: GatewayContext): ReturnType<InternalExecutor['execute']>;
}

export interface GatewayFeature {
  name: string;
  apolloPlugins?: ApolloServerPlugin<GatewayContext>[];
  /** Validation rules added to GraphQL's (every feature's are concatenated). */
  validationRules?: ValidationRule[];
  /** Apollo Server options this feature owns (later features win on the same key). */
  apolloOptions?: Partial<Pick<ApolloServerOptions<GatewayContext>, 'parseOptions' | 'persistedQueries' | 'allowBatchedHttpRequests'>>;
  /** Runs before GraphQL for every HTTP request; return true when it answered the request itself. */
  before?(req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean>;
  /** Adds to (or refuses) the per-request context after authentication. */
  extendContext?(req: IncomingMessage, res: ServerResponse, context: GatewayContext): void | Promise<void>;
  /** Called once the HTTP server listens (e.g. to add a WebSocket server on it). */
  attach?(server: Server, deps: GatewayDeps): void | Promise<void>;
  ready?(): Promise<Record<string, boolean>>;
  stop?(): Promise<void>;
}
