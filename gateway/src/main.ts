/**
 * The gateway on its own (containers, real services): serves SUPERGRAPH_PATH on PORT, with the
 * event bus (Kafka when KAFKA_BROKERS is set) for live subscriptions and the deleted-user denylist.
 * GATEWAY_WORKERS=N > 1: this process is a node:cluster primary and N workers serve the one port.
 */
import { setupTelemetry, ALL_TOPICS, createBus, createLogger, isClusterPrimary, readConfig, startWorkers } from '@crm/kit';
import { startGateway } from './server';

async function main() {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: 'crm-gateway', config });
  const logger = createLogger('gateway', config.LOG_LEVEL);
  if (config.GATEWAY_WORKERS > 1 && isClusterPrimary()) {
    const pool = await startWorkers(config.GATEWAY_WORKERS, logger);
    const stop = () => void pool.stop().then(() => telemetry.shutdown()).then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return;
  }
  const bus = createBus(config, 'crm-gateway', logger);
  await bus.prepare(ALL_TOPICS);
  const gateway = await startGateway({ config, bus, logger });
  const shutdown = () =>
    void gateway
      .stop()
      .then(() => bus.close())
      .then(() => telemetry.shutdown())
      .then(() => process.exit(0));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
