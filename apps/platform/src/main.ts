/**
 * `npm start`: the whole platform, each service in a process of its own (STACK_PROCESSES=multi,
 * processes.ts; GATEWAY_WORKERS gateway processes) or all in this one (STACK_PROCESSES=single).
 * Embedded by default (PGlite under .data/, in-process bus, in-memory limits); POSTGRES_URL,
 * KAFKA_BROKERS and REDIS_URL switch each part to the real service.
 */
import { setupTelemetry, readConfig } from '@crm/kit';
import { startProcessStack } from './processes';
import { startStack } from './start-stack';

async function main() {
  const config = readConfig();
  // multi: each service process sets up its own telemetry (its entry's main.ts); this one only launches them
  const telemetry = setupTelemetry({ serviceName: 'crm', config });
  const stack = config.STACK_PROCESSES === 'multi' ? await startProcessStack({ ports: 'fixed' }) : await startStack({ config, ports: 'fixed' });
  const mode = [
    config.POSTGRES_URL ? 'Postgres' : `PGlite in ${config.DATA_DIR}/`,
    stack.bus.kind === 'kafka' ? 'Kafka' : stack.bus.kind === 'postgres' ? 'event log in Postgres' : 'in-process bus',
    config.REDIS_URL ? 'Redis' : 'in-memory limits',
    config.STACK_PROCESSES === 'multi' ? `a process per service, ${config.GATEWAY_WORKERS} gateway worker(s)` : 'one process',
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
