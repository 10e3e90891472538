/**
 * Live subscriptions over graphql-ws on the gateway's HTTP server (same /graphql path), fed by the
 * event bus (Kafka, or the in-process bus embedded) and resolved through the federated query plan.
 * @apollo/gateway executes no subscriptions; this feature does. See docs/subscriptions.md.
 *
 * A subscribe is a client operation like any other: it goes through the very pipeline HTTP
 * operations go through (../../pipeline.ts `checkOperation`: limits, validation, trusted documents,
 * cost and rate limits, same errors), then is registered. The per-event resolutions are the
 * gateway's own operations, run on the executor directly (./resolve), outside every client rule.
 *
 *   ./connection  token on connection_init, close codes, expiry
 *   ./operation   what a live subscription needs (one live root field) and the entity query built per subscription
 *   ./topics      field ← topic mapping (configuration)
 *   ./hub         the bus consumer and the in-memory fan-out
 *   ./resolve     one resolution on the executor (not a client operation) with the subscriber's identity
 *   ./queue       per-subscription bounded queue (backpressure)
 *   ./resume      a resumed feed (`notificationAdded(after:)`): backfill in order, then live, none twice
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, OperationTypeNode, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { sendJson, type Identity } from '@crm/runtime';
import { wsConnections, wsSubscriptions } from '@crm/telemetry';
import type { FeatureOptions, GatewayDeps, GatewayFeature } from '../feature';
import { clientIp } from '../../request-info';
import { CLOSE, authenticateConnection } from './connection';
import { LiveHub } from './hub';
import { ONLY_SUBSCRIPTIONS, prepareLiveOperation, type LiveOperation } from './operation';
import { LiveQueue } from './queue';
import { resolveEntity } from './resolve';
import { ResumableFeed, ResumeRefused, subgraphPositions, type Cursor, type FetchPositions } from './resume';
import { LIVE_FIELDS } from './topics';

const PATH = '/graphql';
/** Where a development gateway reports live counts (on when introspection is on). */
export const LIVE_STATS_PATH = '/graphql/live-stats';
/** Client messages are small (subscribe documents); bigger frames close the socket (1009). */
const MAX_CLIENT_FRAME_BYTES = 128 * 1024;
/** After a close frame, a client that does not answer is cut off. */
const CLOSE_GRACE_MS = 3_000;
/** Longest timer node accepts (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface ConnectionState {
  identity: Identity;
  tokenVersion: number;
  ip: string;
  expiry: NodeJS.Timeout;
  queues: Set<LiveQueue>;
  /** Stops the background re-check of this user's token state (../../revocations.ts). */
  unwatch: () => void;
}

interface LiveContext {
  live: LiveOperation;
  identity: Identity;
  socket: WebSocket;
  /** The client's id of this subscription (graphql-ws `subscribe` message). */
  id: string;
  /** A resumed subscription (the field's resume argument given): where its catch-up starts. */
  resumeFrom?: Cursor;
}

/** In production, no "Did you mean …" hints (as ApolloServerPluginDisableSuggestions does for validation) in what this feature adds: variable coercion. */
function withoutSuggestions(err: GraphQLError): GraphQLError {
  const message = err.message.replace(/ ?Did you mean(.+?)\?$/, '');
  return message === err.message ? err : new GraphQLError(message, { extensions: err.extensions });
}

export function useSubscriptions({ config, logger, bus, revocations }: FeatureOptions): GatewayFeature {
  const log = logger.child({ feature: 'subscriptions' });
  const connections = new Map<WebSocket, ConnectionState>();
  let wss: WebSocketServer | undefined;
  let hub: LiveHub | undefined;
  let httpServer: Server | undefined;
  let dispose: (() => void | Promise<void>) | undefined;
  let stopping = false;
  const unwatch: (() => void)[] = [];

  const closeSocket = (socket: WebSocket, code: number, reason: string) => {
    if (socket.readyState === socket.CLOSED) return;
    socket.close(code, reason);
    setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
  };

  // A revoked token ends its sockets within TOKEN_STATE_CACHE_MS, on every replica (each re-checks the users it holds sockets for).
  const stopRevocations = revocations.onRevoke((userId) => {
    for (const [socket, state] of connections) {
      if (state.identity.userId !== userId) continue;
      const revoked = revocations.revokedLocally(userId, state.tokenVersion);
      if (revoked) {
        for (const q of [...state.queues]) q.end();
        closeSocket(socket, CLOSE.forbidden, revoked);
      }
    }
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (!wss || path !== PATH || stopping) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const server = wss;
    server.handleUpgrade(req, socket, head, (ws) => server.emit('connection', ws, req));
  };

  return {
    name: 'subscriptions',

    before(req, res) {
      if (!config.introspection || req.method !== 'GET' || (req.url ?? '').split('?')[0] !== LIVE_STATS_PATH) return false;
      sendJson(res, 200, { connections: connections.size, ...(hub?.snapshot() ?? { consumer: false }) });
      return true;
    },

    async attach(server: Server, deps: GatewayDeps) {
      if (!bus) {
        log.warn('no event bus: live subscriptions are off');
        return;
      }
      httpServer = server;
      hub = new LiveHub({
        bus,
        resolve: (op, identity, entityId) => resolveEntity(deps, op, identity, entityId, log),
        logger: log,
        fields: LIVE_FIELDS,
        concurrency: config.SUBSCRIPTION_RESOLVE_CONCURRENCY,
        resolveTimeoutMs: config.SUBSCRIPTION_RESOLVE_TIMEOUT_MS,
        perUserPerEvent: config.SUBSCRIPTION_RESOLUTIONS_PER_USER_PER_EVENT,
      });
      await hub.start();
      const liveHub = hub;
      // Resumed subscriptions read their order from the owning subgraph (./resume).
      const fetchPositions: FetchPositions = subgraphPositions(deps.subgraphClient);
      unwatch.push(
        wsConnections.add((g) => g.set(connections.size)),
        wsSubscriptions.add((g) => g.set(liveHub.snapshot().subscriptions)),
      );
      wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES });
      server.on('upgrade', onUpgrade);

      const disposable = useServer(
        {
          isProd: config.production,
          onConnect: async (ctx) => {
            const socket = ctx.extra.socket;
            const auth = authenticateConnection(ctx.connectionParams, ctx.extra.request, config);
            if (!auth.ok) {
              closeSocket(socket, auth.code, auth.reason);
              return false;
            }
            const revoked = await revocations.revoked(auth.identity.userId, auth.tokenVersion);
            if (revoked) {
              closeSocket(socket, CLOSE.forbidden, revoked);
              return false;
            }
            // Connection caps (per replica): one user or one address cannot hold unbounded sockets.
            const ip = ctx.extra.request ? clientIp(ctx.extra.request, config.TRUST_PROXY_HOPS) : 'unknown';
            let ofUser = 0;
            let ofIp = 0;
            for (const c of connections.values()) {
              if (c.identity.userId === auth.identity.userId) ofUser += 1;
              if (c.ip === ip) ofIp += 1;
            }
            if (ofUser >= config.SUBSCRIPTION_CONNECTIONS_PER_USER || ofIp >= config.SUBSCRIPTION_CONNECTIONS_PER_IP) {
              const which = ofUser >= config.SUBSCRIPTION_CONNECTIONS_PER_USER ? 'SUBSCRIPTION_CONNECTIONS_PER_USER' : 'SUBSCRIPTION_CONNECTIONS_PER_IP';
              closeSocket(socket, CLOSE.tooMany, `Too many connections (${which})`);
              return false;
            }
            const expiry = setTimeout(() => closeSocket(socket, CLOSE.unauthorized, 'Token expired'), Math.min(Math.max(auth.expiresAt - Date.now(), 0), MAX_TIMER_MS));
            expiry.unref();
            connections.set(socket, { identity: auth.identity, tokenVersion: auth.tokenVersion, ip, expiry, queues: new Set(), unwatch: revocations.watch(auth.identity.userId) });
            return true;
          },
          onSubscribe: async (ctx, id, payload) => {
            const state = connections.get(ctx.extra.socket);
            if (!state) return [new GraphQLError('Unauthorized', { extensions: { code: 'UNAUTHENTICATED' } })];
            if (state.queues.size >= config.SUBSCRIPTIONS_PER_CONNECTION) {
              return [
                new GraphQLError(`At most ${config.SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection (SUBSCRIPTIONS_PER_CONNECTION)`, {
                  extensions: { code: 'BAD_USER_INPUT' },
                }),
              ];
            }
            if (!liveHub.consuming()) {
              // Kafka is away: say so at once instead of leaving the client waiting for nothing.
              return [
                new GraphQLError('Live updates are unavailable right now: the event stream cannot be reached. Try again shortly.', { extensions: { code: 'SERVICE_UNAVAILABLE' } }),
              ];
            }
            // Every client rule, as over HTTP (the same pipeline, the same errors): limits, validation,
            // trusted documents, cost and the rate-limit budget. Nothing of it is repeated here.
            const context = await deps.contextFor(ctx.extra.request, state.identity);
            context.tokenVersion = state.tokenVersion;
            const checked = await deps.checkOperation(
              {
                query: payload.query,
                ...(payload.operationName ? { operationName: payload.operationName } : {}),
                ...(payload.variables ? { variables: payload.variables } : {}),
                ...(payload.extensions ? { extensions: payload.extensions } : {}),
              },
              context,
              { only: OperationTypeNode.SUBSCRIPTION, refusal: ONLY_SUBSCRIPTIONS },
            );
            if (Array.isArray(checked)) return checked;
            const schema: GraphQLSchema | undefined = deps.apiSchema();
            if (!schema) return [new GraphQLError('The supergraph is not loaded yet', { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
            const live = prepareLiveOperation(schema, checked, payload.variables, state.identity);
            if (!('shareKey' in live)) return config.production ? live.map(withoutSuggestions) : live;
            const op = live;
            // A resumed subscription: its `after` must name one of the subscriber's own entities (checked
            // by the owning subgraph; else BAD_USER_INPUT, and nothing is subscribed).
            let resumeFrom: Cursor | undefined;
            const resume = op.field.resume;
            const after = resume ? op.args?.[resume.arg] : undefined;
            if (resume && after !== undefined && after !== null) {
              resumeFrom = { after: String(after) };
              try {
                await fetchPositions(op.field, state.identity, resumeFrom, 1);
              } catch (err) {
                if (err instanceof GraphQLError) return [err instanceof ResumeRefused ? new GraphQLError(err.message, { extensions: err.extensions }) : err];
                log.warn({ err }, 'live: checking a resume cursor failed');
                return [new GraphQLError('Resuming the live feed is unavailable right now. Try again shortly.', { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
              }
            }
            const contextValue: LiveContext = { live: op, identity: state.identity, socket: ctx.extra.socket, id, ...(resumeFrom ? { resumeFrom } : {}) };
            const args: ExecutionArgs = {
              schema,
              document: checked.document,
              variableValues: payload.variables ?? {},
              operationName: payload.operationName ?? null,
              contextValue,
            };
            return args;
          },
          subscribe: (args) => {
            const { live, identity, socket, id, resumeFrom } = args.contextValue as LiveContext;
            const state = connections.get(socket);
            let unregister = () => {};
            // graphql-ws's `next` message, written here from the payload's JSON (built once per
            // resolution group) instead of graphql-ws serializing the same result per subscriber.
            const head = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
            const queue = new LiveQueue({
              limit: config.SUBSCRIPTION_QUEUE_LIMIT,
              maxBufferedBytes: config.SUBSCRIPTION_MAX_BUFFERED_BYTES,
              buffered: () => socket.bufferedAmount,
              send: (json, done) => {
                if (socket.readyState !== socket.OPEN) return done();
                socket.send(`${head}${json}}`, done);
              },
              admit: () => !state || revocations.revokedLocally(identity.userId, state.tokenVersion) === null,
              onOverflow: (why) => {
                log.warn({ userId: identity.userId, field: live.field.field, why }, 'live: subscriber too slow; closing it');
                closeSocket(socket, CLOSE.tooSlow, 'Subscriber too slow');
              },
              onEnd: () => {
                unregister();
                state?.queues.delete(queue);
              },
            });
            if (!state || stopping) {
              queue.end();
              return queue;
            }
            state.queues.add(queue);
            if (!resumeFrom) {
              unregister = liveHub.add(live, identity, queue);
              return queue;
            }
            const feed = new ResumableFeed({
              op: live,
              identity,
              queue,
              cursor: resumeFrom,
              positions: fetchPositions,
              resolve: (op, who, entityId) => resolveEntity(deps, op, who, entityId),
              resolveTimeoutMs: config.SUBSCRIPTION_RESOLVE_TIMEOUT_MS,
              counted: (ok) => liveHub.counted(live.field.field, ok),
              logger: log,
            });
            // Live first (every event it may receive from now on wakes it), then the backfill: nothing
            // published in between is missed, and the cursor makes sure nothing is delivered twice.
            const unwake = liveHub.addWaker(live.field, identity, () => feed.wake());
            unregister = () => {
              unwake();
              feed.close();
            };
            feed.wake();
            return queue;
          },
          onClose: (ctx) => {
            const state = connections.get(ctx.extra.socket);
            if (!state) return;
            clearTimeout(state.expiry);
            state.unwatch();
            for (const q of [...state.queues]) q.end();
            connections.delete(ctx.extra.socket);
          },
        },
        wss,
      );
      dispose = () => disposable.dispose();
      log.info({ path: PATH, fields: LIVE_FIELDS.map((f) => f.field) }, 'live subscriptions ready');
    },

    async ready(): Promise<Record<string, boolean>> {
      if (!bus) return {};
      return { subscriptions: hub?.snapshot().consumer ?? false };
    },

    async stop() {
      stopping = true;
      stopRevocations();
      for (const off of unwatch.splice(0)) off();
      httpServer?.off('upgrade', onUpgrade);
      // 1. the consumer leaves its group: no new events
      await hub?.stop().catch((err: unknown) => log.warn({ err }, 'live: stopping the consumer failed'));
      // 2. every socket closes 1012 'Service restart' WITHOUT completing its subscriptions: graphql-ws
      //    clients retry that code and subscribe again (a resumable one with the last id it got), where
      //    a `complete` would have ended them for good.
      for (const socket of connections.keys()) closeSocket(socket, CLOSE.restart, 'Service restart');
      for (const socket of wss?.clients ?? []) closeSocket(socket, CLOSE.restart, 'Service restart');
      const deadline = Date.now() + CLOSE_GRACE_MS + 500;
      while (wss && wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      for (const socket of wss?.clients ?? []) socket.terminate();
      await Promise.resolve(dispose?.()).catch((err: unknown) => log.warn({ err }, 'live: closing the WebSocket server failed'));
      for (const state of connections.values()) {
        clearTimeout(state.expiry);
        state.unwatch();
      }
      connections.clear();
    },
  };
}
