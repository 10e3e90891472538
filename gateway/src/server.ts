/**
 * The gateway: Apollo Gateway (query planning over the supergraph) on Apollo Server, served on
 * plain node:http with /health and /ready. Everything else is a feature (./features: rate and
 * cost limits, operation limits, subscriptions, Sandbox, …; the shape is features/feature.ts,
 * the list features/index.ts); this file only wires them.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import type { GraphQLSchema } from 'graphql';
import {
  closeRedis,
  closeServer,
  createGraphQLHandler,
  launcherLink,
  listen,
  sendJson,
  sendReadiness,
  servicesFromLauncher,
  authPublicKeys,
  gatewaySigningKey,
} from '@crm/runtime';
import { createLogger, type Logger } from '@crm/telemetry';
import { maskError } from '@crm/errors';
import { type EventBus } from '@crm/events';
import { defaultApolloTelemetryOff, type PlatformConfig, requireServiceSecrets } from '@crm/config';
import { bearerToken, unauthenticated, verifyAccessToken } from './auth';
import { createSubgraphAgent, SubgraphClient, type GatewayContext } from './datasource';
import { subgraphUrls } from './compose';
import { gatewayFeatures, type GatewayDeps } from './features';
import { checkOnlyPlugin, checkOperation, InternalExecutor } from './pipeline';
import { withPlanExecutor } from './engine/plan-executor';
import { bindRequest } from './request-info';
import { createGatewayRedis } from './redis';

export interface GatewayOptions {
  config: PlatformConfig;
  /** A composed supergraph file, watched and reloaded when it changes. */
  supergraphPath?: string;
  /** Or the supergraph itself (tests, benchmarks). */
  supergraphSdl?: string;
  logger?: Logger;
  /** The event bus (live subscriptions, the deleted-user denylist); none: those features stay off. */
  bus?: EventBus;
  port?: number;
  host?: string;
  /** Who executes query plans: the gateway's engine (default), or Apollo Gateway's own executor (comparison tests). */
  executor?: 'engine' | 'apollo';
}

export interface GatewayRuntime {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<GatewayRuntime> {
  const { config } = options;
  const logger = options.logger ?? createLogger('gateway', config.LOG_LEVEL);
  // Only its own keys (kit keys.ts): its private key for what it forwards, auth's public keys for tokens.
  requireServiceSecrets(config, 'gateway');
  const signer = gatewaySigningKey(config);
  authPublicKeys(config);
  const launcherServices = servicesFromLauncher(launcherLink(config));
  let currentSdl = '';
  let watcher: FSWatcher | undefined;

  const subgraphAgent = createSubgraphAgent();
  // Apollo Gateway sends anonymous usage metrics to Apollo unless APOLLO_TELEMETRY_DISABLED is set, and
  // first probes ten clouds' metadata endpoints for its resource; that start-up also switches on
  // Node's promise hooks for the life of the process (a cost on every promise). Nothing leaves this
  // gateway unless its operator asks for it: off unless the variable says otherwise.
  defaultApolloTelemetryOff();
  /** The subgraph clients by name, as Apollo Gateway builds them (for the engine). */
  const clients = new Map<string, SubgraphClient>();
  const gateway = new ApolloGateway({
    logger,
    buildService: ({ name, url }) => {
      const client = new SubgraphClient(url ?? '', { name, signer, dedupe: config.SUBGRAPH_DEDUPE, agent: subgraphAgent, timeoutMs: config.SUBGRAPH_TIMEOUT_MS });
      clients.set(name, client);
      return client;
    },
    supergraphSdl: async ({ update }) => {
      if (options.supergraphSdl) {
        currentSdl = options.supergraphSdl;
        return { supergraphSdl: currentSdl };
      }
      const path = options.supergraphPath ?? config.SUPERGRAPH_PATH;
      currentSdl = readFileSync(path, 'utf8');
      watcher = watch(path, () => {
        try {
          const next = readFileSync(path, 'utf8');
          if (next && next !== currentSdl) {
            update(next);
            currentSdl = next;
            logger.info({ path }, 'supergraph reloaded');
          }
        } catch (err) {
          logger.error({ err, path }, 'supergraph reload failed; keeping the previous one');
        }
      });
      return { supergraphSdl: currentSdl, cleanup: async () => watcher?.close() };
    },
  });

  // Apollo Server runs client operations (HTTP, and WebSocket subscribes through checkOperation);
  // the gateway's own operations go to the same executor directly (./pipeline.ts).
  const formatError = maskError(config.production);
  const internal = new InternalExecutor(logger, formatError as never);
  const served = internal.wrap(options.executor === 'apollo' ? gateway : withPlanExecutor(gateway, clients).gateway);

  const redis = createGatewayRedis(config, logger);
  const features = gatewayFeatures({ config, logger, bus: options.bus, redis, supergraphSdl: () => currentSdl });
  let apiSchema: GraphQLSchema | undefined;
  gateway.onSchemaLoadOrUpdate(({ apiSchema: schema }) => {
    apiSchema = schema;
  });

  const apollo = new ApolloServer<GatewayContext>({
    gateway: served,
    introspection: config.introspection,
    includeStacktraceInErrorResponses: config.DEBUG_ERRORS, // an explicit debug setting only (no stack or paths to clients by default)
    formatError: formatError as never,
    csrfPrevention: true,
    // The service stops itself (runtime.stop); Apollo's own handler would kill the process mid-way.
    stopOnTerminationSignals: false,
    logger,
    // checkOnlyPlugin first: a checked-only operation (a WebSocket subscribe) stops before any other plugin answers for it.
    plugins: [checkOnlyPlugin, ...features.flatMap((f) => f.apolloPlugins ?? [])],
    validationRules: features.flatMap((f) => f.validationRules ?? []),
    ...Object.assign({}, ...features.map((f) => f.apolloOptions ?? {})),
  });
  await apollo.start();

  const contextFor = async (_req: IncomingMessage | undefined, identity: GatewayContext['identity']): Promise<GatewayContext> => ({ identity });
  const context = async (req: IncomingMessage, res: ServerResponse): Promise<GatewayContext> => {
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (header && !token) throw unauthenticated('Authorization must be "Bearer <access token>"');
    const verified = token ? verifyAccessToken(token, config) : undefined;
    const ctx = await contextFor(req, verified?.identity ?? null);
    if (verified) ctx.tokenVersion = verified.tokenVersion;
    bindRequest(ctx, req, res, config.TRUST_PROXY_HOPS);
    for (const f of features) await f.extendContext?.(req, res, ctx);
    return ctx;
  };

  const handler = createGraphQLHandler({
    apollo,
    context,
    maxBodyBytes: config.MAX_BODY_BYTES,
    service: 'gateway',
    metrics: { token: config.METRICS_TOKEN, production: config.production },
    onError: (err) => logger.error({ err }, 'request failed'),
    before: async (req, res) => {
      for (const f of features) if (f.before && (await f.before(req, res))) return true;
      return false;
    },
    routes: {
      '/health': (_req, res) => sendJson(res, 200, { status: 'ok', service: 'gateway' }),
      '/ready': async (_req, res) => {
        const subgraphs = await checkSubgraphs(currentSdl);
        const extra = await Promise.all(features.map((f) => f.ready?.() ?? Promise.resolve({})));
        // Subgraphs and the supergraph decide readiness; features (event stream, Redis) only degrade it.
        // under the launcher (npm start): which service is up, restarting or given up on
        const services = launcherServices();
        sendReadiness(res, 'gateway', { supergraph: currentSdl.length > 0, ...subgraphs }, Object.assign({}, ...extra) as Record<string, boolean>, services ? { services } : {});
      },
    },
  });

  const { server, port } = await listen(handler, options.port ?? config.PORT, options.host ?? config.HOST, {
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
  });
  const deps: GatewayDeps = {
    config,
    logger,
    gateway,
    subgraphClient: (name) => clients.get(name),
    apiSchema: () => apiSchema,
    contextFor,
    checkOperation: (request, ctx, check) => checkOperation(apollo, request, ctx, check),
    executeInternal: (op, variables, ctx) => internal.execute(op, variables, ctx),
  };
  for (const f of features) await f.attach?.(server, deps);
  const url = `http://127.0.0.1:${port}/graphql`;
  logger.info({ url }, 'gateway ready');
  return {
    url,
    port,
    async stop() {
      // New connections are refused from here on; requests in flight finish (SHUTDOWN_GRACE_MS),
      // while the features stop (live subscriptions: every socket closed with 1012 Service restart, which clients retry).
      const drained = closeServer(server, config.SHUTDOWN_GRACE_MS);
      for (const f of [...features].reverse()) await f.stop?.();
      await drained;
      await apollo.stop();
      await subgraphAgent.close();
      if (redis) await closeRedis(redis);
    },
  };
}

async function checkSubgraphs(sdl: string): Promise<Record<string, boolean>> {
  const entries = Object.entries(subgraphUrls(sdl));
  const results = await Promise.all(
    entries.map(async ([name, url]) => {
      try {
        const res = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(2000) });
        return [`subgraph:${name}`, res.ok] as const;
      } catch {
        return [`subgraph:${name}`, false] as const;
      }
    }),
  );
  return Object.fromEntries(results);
}
