/**
 * The gateway as a service of its own (its container's entry; the launcher's multi-process mode
 * forks it too): serves SUPERGRAPH_PATH (watched) on PORT, with the event bus (Kafka when
 * KAFKA_BROKERS is set) for live subscriptions and the deleted-user denylist.
 * GATEWAY_WORKERS=N > 1: this process is a node:cluster primary and N workers serve the one port;
 * under the launcher without Kafka, the primary relays bus messages between its workers and it.
 */
import { announceReady, isClusterPrimary, isServices, launcherLink, onShutdown, serviceBus, startWorkers } from '@crm/runtime';
import { busKind, IpcBus } from '@crm/events';
import { createLogger, setupTelemetry } from '@crm/telemetry';
import { readConfig } from '@crm/config';
import { startGateway } from './server';

async function main() {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: 'crm-gateway', config });
  const logger = createLogger('gateway', config.LOG_LEVEL);
  if (config.GATEWAY_WORKERS > 1 && isClusterPrimary()) {
    const link = launcherLink(config);
    const relay = link && busKind(config) === 'memory' ? new IpcBus(logger) : undefined;
    if (link) relay?.link(link);
    const workers = new Set<import('node:cluster').Worker>();
    const pool = await startWorkers(config.GATEWAY_WORKERS, logger, (w) => {
      relay?.link(w);
      workers.add(w);
      w.once('exit', () => workers.delete(w));
    });
    // the launcher's view of every service, for each worker's /ready
    link?.on('message', (m) => {
      if (isServices(m)) for (const w of workers) if (w.isConnected()) w.send(m, () => undefined);
    });
    onShutdown(async () => {
      await pool.stop();
      await relay?.close();
      await telemetry.shutdown();
    }, logger);
    announceReady(config, `http://127.0.0.1:${pool.port}/graphql`, pool.port);
    return;
  }
  const bus = await serviceBus(config, 'crm-gateway', logger);
  const gateway = await startGateway({ config, bus, logger });
  onShutdown(async () => {
    await gateway.stop();
    await bus.close();
    await telemetry.shutdown();
  }, logger);
  announceReady(config, gateway.url, gateway.port);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
