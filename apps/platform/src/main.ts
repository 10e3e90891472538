/**
 * `npm start`: the whole platform, each service in a process of its own (STACK_PROCESSES=multi,
 * processes.ts, which restarts a service that dies; GATEWAY_WORKERS gateway processes) or all in
 * this one (STACK_PROCESSES=single). Embedded by default: a Postgres server this launcher starts
 * from npm-shipped binaries under .data/postgres (embedded-database.ts), the in-process bus, in-memory
 * limits; POSTGRES_URL, KAFKA_BROKERS and REDIS_URL switch each part to a service of yours.
 */
import { createLogger, setupTelemetry } from '@crm/telemetry';
import { readConfig } from '@crm/config';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './embedded-database';
import { startProcessStack, type ProcessStack } from './processes';
import { startStack, type Stack } from './start-stack';

async function main() {
  const initial = readConfig();
  const logger = createLogger('platform', initial.LOG_LEVEL);
  // multi: each service process sets up its own telemetry (its entry's main.ts); this one only launches them
  const telemetry = setupTelemetry({ serviceName: 'crm', config: initial });
  let stack: Stack | ProcessStack | undefined;
  let database: EmbeddedDatabase | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    // the services first, the database last
    Promise.resolve(stack?.stop())
      .then(() => database?.stop())
      .then(() => telemetry.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
  };
  // `on`, not `once`: one Ctrl-C can arrive here more than once (the terminal signals the whole
  // process group, npm passes it on), and a signal nobody listens for ends this process at once,
  // before the database is stopped. (`npm start` runs this as `node --import tsx`, not under tsx's
  // CLI, which SIGKILLs a child that is slow to confirm a signal it passes on.) Repeats are ignored:
  // the shutdown is already bounded (SIGKILL after 15 s for a service, SIGQUIT after 30 s for Postgres).
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => shutdown(signal));

  try {
    database = await startEmbeddedDatabase(initial.DATA_DIR, logger);
    const config = readConfig();
    if (stopping) return;
    stack = config.STACK_PROCESSES === 'multi' ? await startProcessStack({ ports: 'fixed', logger, database: database.server }) : await startStack({ config, ports: 'fixed' });
    const mode = [
      database.server ? `embedded Postgres in ${config.DATA_DIR}/postgres (port ${database.server.port})` : 'Postgres',
      stack.bus.kind === 'kafka' ? 'Kafka' : stack.bus.kind === 'memory' ? 'in-process bus' : 'event log in Postgres',
      config.REDIS_URL ? 'Redis' : 'in-memory limits',
      config.STACK_PROCESSES === 'multi' ? `a process per service, ${config.GATEWAY_WORKERS} gateway worker(s)` : 'one process',
    ].join(', ');
    console.log(`\nCRM graph ready at ${stack.gatewayUrl.replace('127.0.0.1', 'localhost')} (${mode})\n`);
  } catch (err) {
    await database?.stop().catch(() => undefined);
    throw err;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
