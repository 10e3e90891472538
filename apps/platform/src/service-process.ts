/**
 * One service of a multi-process stack (processes.ts forks this file):
 *   service-process subgraph <name> <port>
 *   service-process gateway <port> <supergraph file>
 * Configuration comes from the environment the launcher passes (readConfig). When it is up, the
 * process sends { 'crm-ready': { url, port } } to its parent. SIGTERM, SIGINT or the parent going
 * away stop it. Without Kafka its bus is an IpcBus linked to the parent (ipc-bus.ts).
 *
 * The gateway with GATEWAY_WORKERS=N > 1 is a node:cluster primary: N workers share its port
 * (the OS spreads connections over them), a worker that dies is replaced, and the primary only
 * relays bus messages between its workers and the launcher.
 */
import { readFileSync } from 'node:fs';
import {
  ALL_TOPICS, createBus, createLogger, isClusterPrimary, readConfig, setupTelemetry, startSubgraph, startWorkers,
  type EventBus, type Logger, type PlatformConfig,
} from '@crm/kit';
import { startGateway } from '@crm/gateway';
import { IpcBus, READY, isPeers, type IpcLink, type ReadyMessage } from './ipc-bus';
import { subgraphByName } from './subgraphs';

const HOST = '127.0.0.1';
const parent = process as unknown as IpcLink;

/** Kafka when configured (topics provisioned, or in the background while the broker is away); else the in-process bus bridged over IPC. */
async function busFor(config: PlatformConfig, clientId: string, logger: Logger): Promise<EventBus> {
  const bus = createBus(config, clientId, logger);
  if (bus.kind === 'kafka') {
    await bus.prepare(ALL_TOPICS);
    return bus;
  }
  void bus.close();
  const ipc = new IpcBus(logger);
  ipc.link(parent);
  return ipc;
}

/** Runs `stop` once on SIGTERM, SIGINT or the parent's exit, then exits. */
function onShutdown(stop: () => Promise<void>, logger: Logger) {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.once('disconnect', shutdown);
}

async function subgraph(name: string, port: number) {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: `crm-${name}`, config });
  const logger = createLogger(name, config.LOG_LEVEL);
  const bus = await busFor(config, `crm-${name}`, logger);
  // Peers (read-through) answer where the launcher says once every subgraph is up; until then: unknown.
  const peers = new Map<string, string>();
  process.on('message', (m) => isPeers(m) && Object.entries(m['crm-peers']).forEach(([n, url]) => peers.set(n, url)));
  const runtime = await startSubgraph(subgraphByName(name), { config, port, host: HOST, bus, logger, peerUrl: (n) => peers.get(n) });
  onShutdown(async () => {
    await runtime.stop();
    await bus.close();
    await telemetry.shutdown();
  }, logger);
  process.send?.({ [READY]: { url: runtime.url, port: runtime.port } } satisfies ReadyMessage);
}

async function gatewayWorker(port: number, supergraphPath: string) {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: 'crm-gateway', config });
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const bus = await busFor(config, 'crm-gateway', logger);
  const gateway = await startGateway({ config, bus, supergraphSdl: readFileSync(supergraphPath, 'utf8'), port, host: HOST, logger });
  onShutdown(async () => {
    await gateway.stop();
    await bus.close();
    await telemetry.shutdown();
  }, logger);
  process.send?.({ [READY]: { url: gateway.url, port: gateway.port } } satisfies ReadyMessage);
}

/** The cluster primary of GATEWAY_WORKERS gateway workers (same file and arguments, kit cluster.ts). */
async function gatewayPrimary(workers: number) {
  const config = readConfig();
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const probe = createBus(config, 'crm-gateway-primary', logger);
  const relay = probe.kind === 'kafka' ? undefined : new IpcBus(logger);
  await probe.close();
  relay?.link(parent);
  const pool = await startWorkers(workers, logger, (w) => relay?.link(w));
  onShutdown(async () => {
    await pool.stop();
    await relay?.close();
  }, logger);
  process.send?.({ [READY]: { url: `http://${HOST}:${pool.port}/graphql`, port: pool.port } } satisfies ReadyMessage);
}

async function main() {
  const [role, ...args] = process.argv.slice(2);
  if (role === 'subgraph') return subgraph(args[0]!, Number(args[1]));
  if (role === 'gateway') {
    const workers = readConfig().GATEWAY_WORKERS;
    if (workers > 1 && isClusterPrimary()) return gatewayPrimary(workers);
    return gatewayWorker(Number(args[0]), args[1]!);
  }
  throw new Error('usage: service-process subgraph <name> <port> | gateway <port> <supergraph file>');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
