/**
 * `npm start`: the whole platform in one process. Embedded by default (PGlite under .data/,
 * in-process bus, in-memory limits); POSTGRES_URL, KAFKA_BROKERS and REDIS_URL switch each
 * part to the real service.
 */
import { setupTelemetry, readConfig } from '@crm/kit';
import { startStack } from './start-stack';

async function main() {
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: 'crm', config });
  const stack = await startStack({ config, ports: 'fixed' });
  const mode = [
    config.POSTGRES_URL ? 'Postgres' : `PGlite in ${config.DATA_DIR}/`,
    stack.bus.kind === 'kafka' ? 'Kafka' : 'in-process bus',
    config.REDIS_URL ? 'Redis' : 'in-memory limits',
  ].join(', ');
  console.log(`\nCRM graph ready at ${stack.gatewayUrl.replace('127.0.0.1', 'localhost')} (${mode})\n`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    stack.stop().then(() => telemetry.shutdown()).then(() => process.exit(0), (err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
