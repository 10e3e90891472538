/** One subgraph as its own process (containers, real services): `tsx run-subgraph.ts <name>`. */
import { setupTelemetry, createBus, createLogger, readConfig, startSubgraph, ALL_TOPICS } from '@crm/kit';
import { readSupergraphConfig } from '@crm/gateway';
import { subgraphByName } from './subgraphs';
import { SUPERGRAPH_CONFIG } from './start-stack';

async function main() {
  const name = process.argv[2];
  if (!name) throw new Error('usage: run-subgraph <name>');
  const def = subgraphByName(name);
  const config = readConfig();
  const telemetry = setupTelemetry({ serviceName: `crm-${name}`, config });
  const logger = createLogger(name, config.LOG_LEVEL);
  const bus = createBus(config, `crm-${name}`, logger);
  await bus.prepare(ALL_TOPICS);
  // Peers answer where supergraph.yaml routes them (<NAME>_URL overrides, as for composition).
  const peers = new Map(readSupergraphConfig(SUPERGRAPH_CONFIG).map((s) => [s.name, s.url]));
  const runtime = await startSubgraph(def, { config, port: config.PORT, host: config.HOST, bus, logger, peerUrl: (n) => peers.get(n) });
  const shutdown = () => void runtime.stop().then(() => bus.close()).then(() => telemetry.shutdown()).then(() => process.exit(0));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
