/**
 * The gateway on its own (containers, real services): serves SUPERGRAPH_PATH on PORT, with the
 * event bus (Kafka when KAFKA_BROKERS is set) for live subscriptions and the deleted-user denylist.
 */
import { setupTelemetry, ALL_TOPICS, createBus, createLogger, readConfig } from '@crm/kit';
import { startGateway } from './server';

async function main() {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: 'crm-gateway', config });
  const logger = createLogger('gateway', config.LOG_LEVEL);
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
