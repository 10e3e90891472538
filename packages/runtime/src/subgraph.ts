/**
 * The one bootstrap every subgraph uses: config → logger → its own database (migrations) →
 * Apollo subgraph schema → HTTP with health routes → outbox relay, event consumers and jobs.
 * A subgraph folder only declares a SubgraphDefinition; nothing here is copied per service.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import { GraphQLError, Kind, parse, type DocumentNode } from 'graphql';
import type { EntityManager, EntitySchema } from '@mikro-orm/postgresql';
import { requireServiceSecrets, type PlatformConfig } from '@crm/config';
import { inBackground, openDatabase, type Database, type MigrationEntry } from '@crm/database';
import { maskError } from '@crm/errors';
import { closeServer, createGraphQLHandler, listen, rawBodyOf, readBody, sendJson, sendReadiness, type Route } from './http';
import { IDENTITY_HEADER, SIGNATURE_HEADER, verifyIdentity, type Identity, type IdentityKeys } from './identity';
import { gatewayPublicKeys, servicePublicKeys, serviceSigningKey } from './keys';
import { createLogger, type Logger } from '@crm/telemetry';
import { createPeers, SYSTEM_IDENTITY, type Peers } from './peers';
import type { EventBus } from '@crm/events';
import type { Envelope, EventData, EventType } from '@crm/events';
import { InboxRecord } from '@crm/events';
import { OutboxMessage, stageEvent, type EventCause } from '@crm/events';
import { kitMigrations } from '@crm/database';
import { startRelay, type Relay } from '@crm/events';
import { consumerGroup, startConsumer, type Consumer, type EventHandlers } from '@crm/events';
import { EVENTS } from '@crm/events';
import { graphqlTelemetryPlugin, traceResolvers } from '@crm/telemetry';
import { isTransient, watchConsumerLag, watchOutbox } from '@crm/events';
import { signedTraceContext } from '@crm/telemetry';
import { eventRetentionJob } from '@crm/events';
import { writeAggregate } from '@crm/events';

export interface RequestContext<L = unknown> {
  identity: Identity | null;
  em: EntityManager;
  loaders: L;
  logger: Logger;
  config: PlatformConfig;
  /** Synchronous read-through to the subgraphs that own other domains' entities. */
  peers: Peers;
  /** Stages a domain event in this request's unit of work; it commits with the next flush. */
  emit: <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, cause?: Partial<EventCause>) => Envelope<T>;
  /**
   * A write that emits: `fn` runs in one transaction (./events/aggregate.ts) with its own `em` (load
   * the aggregate with `loadForWrite(em, …)`) and an `emit` that stages into that transaction.
   */
  write<R>(fn: (tx: WriteContext) => Promise<R>): Promise<R>;
}

/** The transaction of a `RequestContext.write`. */
export interface WriteContext {
  em: EntityManager;
  emit: <T extends EventType>(type: T, aggregateId: string, data: EventData<T>, cause?: Partial<EventCause>) => Envelope<T>;
}

export interface Job {
  name: string;
  intervalMs(config: PlatformConfig): number;
  run(runtime: SubgraphRuntime): Promise<void>;
}

export interface SubgraphDefinition<L = unknown> {
  name: string;
  /** Absolute path of the subgraph's schema.graphql (also what supergraph.yaml points at). */
  schemaPath: string;
  resolvers: GraphQLResolverMap<RequestContext<L>>;
  entities: EntitySchema<any, any>[];
  migrations: MigrationEntry[];
  createLoaders?(em: EntityManager, identity: Identity | null): L;
  consumes?: EventHandlers;
  /**
   * For a consumer whose effects nobody waits for (auth's audit log): how long a short batch waits
   * for more before it is handled (events SubscribeOptions.lingerMs). Omitted: handled at once.
   */
  consumeLingerMs?: number;
  jobs?: Job[];
  onStart?(runtime: SubgraphRuntime): Promise<void>;
  /**
   * Internal calls, served at POST /internal/<name>: a JSON body, signed exactly like a GraphQL
   * call (identity.ts, for this subgraph, method and body), answered with JSON. Not part of the
   * supergraph: the gateway's own questions (e.g. auth's token states, docs/revocation.md).
   */
  internal?: Record<string, (input: unknown, runtime: SubgraphRuntime) => Promise<unknown>>;
  /** Extra HTTP routes beside /graphql (auth: its public keys at /.well-known/jwks.json). */
  routes?(config: PlatformConfig): Record<string, (req: IncomingMessage, res: ServerResponse) => void | Promise<void>>;
}

export interface SubgraphRuntime {
  name: string;
  url: string;
  port: number;
  config: PlatformConfig;
  logger: Logger;
  db: Database;
  bus: EventBus | undefined;
  relay: Relay | undefined;
  peers: Peers;
  /** A fresh EntityManager for work outside a request (jobs, start-up). */
  fork(): EntityManager;
  /** Stages an event on `em` as this subgraph. */
  emit<T extends EventType>(em: EntityManager, type: T, aggregateId: string, data: EventData<T>, cause: EventCause): Envelope<T>;
  stop(): Promise<void>;
}

export interface StartSubgraphOptions {
  config: PlatformConfig;
  port: number;
  host?: string;
  bus?: EventBus;
  logger?: Logger;
  databaseUrl?: string;
  /** Where the other subgraphs answer (read-through); looked up at call time. */
  peerUrl?: (subgraph: string) => string | null | undefined;
}

export function loadTypeDefs(schemaPath: string): DocumentNode {
  return parse(readFileSync(schemaPath, 'utf8'));
}

/** A subgraph's own database with the kit's tables (outbox, inbox); opening it applies pending migrations. */
export function openSubgraphDatabase(
  def: Pick<SubgraphDefinition<unknown>, 'name' | 'entities' | 'migrations'>,
  config: PlatformConfig,
  logger: Logger,
  url?: string,
): Promise<Database> {
  return openDatabase({
    subgraph: def.name,
    config,
    entities: [OutboxMessage, InboxRecord, ...def.entities],
    migrations: [...kitMigrations, ...def.migrations],
    logger,
    ...(url ? { url } : {}),
  });
}

export async function startSubgraph<L>(def: SubgraphDefinition<L>, options: StartSubgraphOptions): Promise<SubgraphRuntime> {
  const { config } = options;
  const logger = options.logger ?? createLogger(def.name, config.LOG_LEVEL);
  // Only its own keys (kit keys.ts): the gateway's and its peers' public keys, its own private key.
  requireServiceSecrets(config, def.name);
  const identityKeys = (): IdentityKeys => ({ gateway: gatewayPublicKeys(config), services: servicePublicKeys(config) });
  identityKeys();
  serviceSigningKey(config, def.name);
  const db = await openSubgraphDatabase(def, config, logger, options.databaseUrl);
  const orm = db.orm;
  const emitAs = <T extends EventType>(em: EntityManager, type: T, aggregateId: string, data: EventData<T>, cause: EventCause) =>
    stageEvent(em, def.name, type, aggregateId, data, cause);

  const peers = createPeers({
    signer: () => serviceSigningKey(config, def.name),
    timeoutMs: config.PEER_TIMEOUT_MS,
    urlOf: options.peerUrl ?? (() => undefined),
    logger,
  });

  const apollo = new ApolloServer<RequestContext<L>>({
    schema: buildSubgraphSchema([{ typeDefs: loadTypeDefs(def.schemaPath), resolvers: traceResolvers(def.name, def.resolvers) as never }]),
    introspection: !config.production,
    includeStacktraceInErrorResponses: config.DEBUG_ERRORS, // an explicit debug setting only (no stack or paths to clients by default)
    // the database away or restarting, a deadlock victim: SERVICE_UNAVAILABLE (try again), not an internal error
    formatError: maskError(config.production, isTransient) as never,
    csrfPrevention: false, // only the gateway (which signs every request) may call a subgraph
    // The service stops itself (runtime.stop: relay, consumers, database); Apollo's own handler would kill the process mid-way.
    stopOnTerminationSignals: false,
    logger,
    // The schemas carry no cache hints (@cacheControl) and only the gateway reads these responses (POSTs, never cached):
    // Apollo's default cache-control plugin only wrapped every field resolver of every request in willResolveField
    // instrumentation to compute `cache-control: no-store`.
    plugins: [ApolloServerPluginInlineTraceDisabled(), ApolloServerPluginCacheControlDisabled(), graphqlTelemetryPlugin(def.name)],
  });
  await apollo.start();

  const context = async (req: IncomingMessage): Promise<RequestContext<L>> => {
    const verified = verifyIdentity(header(req, IDENTITY_HEADER), header(req, SIGNATURE_HEADER), identityKeys(), {
      subgraph: def.name,
      method: req.method ?? 'GET',
      body: rawBodyOf(req),
    });
    if (!verified.ok) {
      throw new GraphQLError(`Refused: ${verified.reason}; subgraphs only answer the gateway`, {
        extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
      });
    }
    // A peer (service principal) may only read entities (read-through): never a mutation, never a user's query.
    if (verified.service !== undefined && !entitiesReadOnly(rawBodyOf(req))) {
      throw new GraphQLError(`Refused: the ${verified.service} service may only read entities here`, {
        extensions: { code: 'FORBIDDEN', http: { status: 403 } },
      });
    }
    const em = orm.em.fork();
    const identity = verified.service !== undefined ? SYSTEM_IDENTITY : verified.identity;
    return {
      identity,
      em,
      loaders: def.createLoaders ? def.createLoaders(em, identity) : (undefined as L),
      logger,
      config,
      peers,
      emit: (type, aggregateId, data, cause) => emitAs(em, type, aggregateId, data, { actorId: identity?.userId ?? null, ...cause }),
      write: (fn) =>
        writeAggregate(em, (tx) => fn({ em: tx, emit: (type, aggregateId, data, cause) => emitAs(tx, type, aggregateId, data, { actorId: identity?.userId ?? null, ...cause }) })),
    };
  };

  let relay: Relay | undefined;
  const consumers: Consumer[] = [];
  let server: Server | undefined;
  const timers: NodeJS.Timeout[] = [];
  const unwatch: (() => void)[] = [];
  const bus = options.bus;

  // Internal calls (SubgraphDefinition.internal): the same signature check as GraphQL calls.
  let self: SubgraphRuntime | undefined;
  const internalRoutes: Record<string, Route> = {};
  for (const [name, serve] of Object.entries(def.internal ?? {})) {
    internalRoutes[`/internal/${name}`] = async (req, res) => {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST only' });
      const raw = await readBody(req, config.MAX_BODY_BYTES);
      // the gateway's signature only: a peer's service key is not accepted here
      const verified = verifyIdentity(
        header(req, IDENTITY_HEADER),
        header(req, SIGNATURE_HEADER),
        { gateway: gatewayPublicKeys(config) },
        { subgraph: def.name, method: 'POST', body: raw },
      );
      if (!verified.ok) return sendJson(res, 401, { error: `Refused: ${verified.reason}` });
      let input: unknown;
      try {
        input = JSON.parse(raw);
      } catch {
        return sendJson(res, 400, { error: 'body is not JSON' });
      }
      if (!self) return sendJson(res, 503, { error: 'starting' });
      try {
        // the gateway's own question (its revocation check), not a client's request: counted as the service's own work
        const answer = self;
        sendJson(res, 200, await inBackground(`internal:${name}`, () => serve(input, answer)));
      } catch (err) {
        const status = (err as { extensions?: { code?: string } }).extensions?.code === 'BAD_USER_INPUT' ? 400 : 500;
        if (status === 500) logger.error({ err, route: name }, 'internal call failed');
        sendJson(res, status, { error: status === 400 ? (err as Error).message : 'internal error' });
      }
    };
  }

  const handler = createGraphQLHandler({
    apollo,
    context,
    maxBodyBytes: config.MAX_BODY_BYTES,
    service: def.name,
    metrics: { token: config.METRICS_TOKEN, production: config.production },
    traceContext: (req) => signedTraceContext(req, identityKeys()),
    onError: (err) => logger.error({ err }, 'request failed'),
    routes: {
      ...internalRoutes,
      ...def.routes?.(config),
      '/health': (_req, res) => sendJson(res, 200, { status: 'ok', service: def.name }),
      '/ready': async (_req, res) => {
        // Only the database decides readiness: without Kafka a subgraph still reads and writes
        // (events wait in the outbox), so it reports itself degraded rather than leaving service.
        // A consumer held by an infrastructure failure (consumersFlowing false) is degraded too.
        const database = await orm.isConnected();
        const events = {
          events: bus ? await bus.healthy() : true,
          consumers: consumers.every((c) => c.running()),
          consumersFlowing: consumers.every((c) => c.health().stalled === null),
        };
        sendReadiness(res, def.name, { database }, events);
      },
    },
  });
  const listening = await listen(handler, options.port, options.host ?? '127.0.0.1', {
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
  });
  server = listening.server;

  const runtime: SubgraphRuntime = {
    name: def.name,
    url: `http://127.0.0.1:${listening.port}/graphql`,
    port: listening.port,
    config,
    logger,
    db,
    bus,
    relay: undefined,
    peers,
    fork: () => orm.em.fork(),
    emit: emitAs,
    async stop() {
      for (const t of timers) clearInterval(t);
      for (const off of unwatch) off();
      if (server) await closeServer(server, config.SHUTDOWN_GRACE_MS);
      await Promise.all(consumers.map((c) => c.stop()));
      if (relay) await relay.stop();
      await apollo.stop();
      await db.close();
    },
  };

  self = runtime;
  if (bus) {
    relay = startRelay({
      orm,
      bus,
      logger,
      pollMs: config.OUTBOX_POLL_MS,
      namespace: config.KAFKA_NAMESPACE,
      maxEventBytes: config.EVENT_MAX_BYTES,
      leaseMs: config.OUTBOX_LEASE_MS,
      sendTimeoutMs: config.OUTBOX_SEND_TIMEOUT_MS,
    });
    runtime.relay = relay;
    if (def.consumes && Object.keys(def.consumes).length > 0) {
      consumers.push(await startConsumer({ name: def.name, orm, bus, logger, handlers: def.consumes, config, runtime, lingerMs: def.consumeLingerMs }));
      const topics = [...new Set(Object.keys(def.consumes).map((t) => EVENTS[t as EventType].topic))];
      unwatch.push(watchConsumerLag(bus, consumerGroup(def.name), topics));
    }
    unwatch.push(watchOutbox(def.name, orm));
  }
  if (def.onStart) await def.onStart(runtime);
  for (const job of [...(def.jobs ?? []), ...(bus ? [eventRetentionJob] : [])]) {
    const tick = () => inBackground(`job:${job.name}`, () => job.run(runtime)).catch((err: unknown) => logger.error({ err, job: job.name }, 'job failed'));
    timers.push(setInterval(() => void tick(), job.intervalMs(config)));
  }
  logger.info({ url: runtime.url }, 'subgraph ready');
  return runtime;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** True when `body` is one query whose root fields are only `_entities` (and `__typename`): what a peer's read-through sends. */
function entitiesReadOnly(body: string): boolean {
  try {
    const { query } = JSON.parse(body) as { query?: unknown };
    if (typeof query !== 'string') return false;
    const doc = parse(query);
    const ops = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    if (ops.length !== 1 || doc.definitions.length !== 1 || ops[0]!.operation !== 'query') return false;
    return ops[0]!.selectionSet.selections.every((s) => s.kind === Kind.FIELD && (s.name.value === '_entities' || s.name.value === '__typename') && !s.directives?.length);
  } catch {
    return false;
  }
}
