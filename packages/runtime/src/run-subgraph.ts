/**
 * One subgraph as a service of its own: its entry, subgraphs/<name>/src/main.ts, is
 * `runSubgraph(definition)` (containers, `npm start -w subgraphs/<name>`, the launcher's
 * multi-process mode), so its process loads only its own subgraph. Configuration from the
 * environment; telemetry; its bus (launcher-link.ts); its peers (read-through) where supergraph.yaml
 * routes them (<NAME>_URL overrides) or, under the launcher, where the launcher says; a graceful
 * stop on SIGTERM/SIGINT.
 */
import { dirname } from 'node:path';
import { ConfigError, isServiceName, readServiceConfig } from '@crm/config';
import { createLogger } from '@crm/telemetry';
import { startSubgraph, type SubgraphDefinition } from './subgraph';
import { setupTelemetry } from '@crm/telemetry';
import { announceReady, launcherLink, onShutdown, peersFromLauncher, serviceBus } from './launcher-link';
import { findSupergraphConfig, readSubgraphRoutes } from './supergraph-config';

export interface RunSubgraphOptions {
  /** supergraph.yaml; default: the nearest one above the subgraph's schema file. */
  supergraphConfig?: string;
}

/** Starts the subgraph and keeps it running until a signal stops it; exits the process (1) if it cannot start. */
export function runSubgraph<L>(def: SubgraphDefinition<L>, options: RunSubgraphOptions = {}): Promise<void> {
  return run(def, options).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

async function run<L>(def: SubgraphDefinition<L>, options: RunSubgraphOptions): Promise<void> {
  if (!isServiceName(def.name)) throw new ConfigError(`subgraph "${def.name}" has no configuration declaration (packages/kit/src/config/variables.ts SERVICE_PIECES)`);
  // Only this subgraph's variables: another service's (its keys, the gateway's limits) are neither read nor required.
  const config = readServiceConfig(def.name);
  const telemetry = setupTelemetry({ serviceName: `crm-${def.name}`, config });
  const logger = createLogger(def.name, config.LOG_LEVEL);
  const bus = await serviceBus(config, `crm-${def.name}`, logger);
  const link = launcherLink(config);
  // Under the launcher peers are unknown until it names them; alone, supergraph.yaml says where they answer.
  const peers = link ? peersFromLauncher(link) : new Map(readSubgraphRoutes(options.supergraphConfig ?? findSupergraphConfig(dirname(def.schemaPath))).map((r) => [r.name, r.url]));
  const runtime = await startSubgraph(def, { config, port: config.PORT, host: config.HOST, bus, logger, peerUrl: (n) => peers.get(n) });
  onShutdown(async () => {
    await runtime.stop();
    await bus.close();
    await telemetry.shutdown();
  }, logger);
  announceReady(config, runtime.url, runtime.port);
}
