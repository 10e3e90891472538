/**
 * Starts the platform in one process: every subgraph (own database each) and the gateway, joined
 * by one event bus. `npm start` uses it with the ports of supergraph.yaml; tests use it with
 * random ports and throwaway databases (the createTenv idea): one helper, every mode.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ALL_TOPICS, createBus, type EventBus } from '@crm/events';
import { createLogger, type Logger } from '@crm/telemetry';
import { startSubgraph, type SubgraphRuntime } from '@crm/runtime';
import { serviceView, type PlatformConfig } from '@crm/config';
import { composeSupergraph, readSupergraphConfig, startGateway, type GatewayRuntime } from '@crm/gateway';
import { SUBGRAPHS } from './subgraphs';

export const ROOT = resolve(__dirname, '../../..');
export const SUPERGRAPH_CONFIG = join(ROOT, 'supergraph.yaml');

export interface StackOptions {
  config: PlatformConfig;
  /** 'fixed': the ports of supergraph.yaml and config.PORT; 'random': free ports (tests). */
  ports?: 'fixed' | 'random';
  /** Which subgraphs to run (default: all). */
  only?: string[];
  gateway?: boolean;
  logger?: Logger;
  /** Share a bus (several gateway replicas in tests); created from config otherwise. */
  bus?: EventBus;
}

export interface Stack {
  config: PlatformConfig;
  gateway: GatewayRuntime | undefined;
  gatewayUrl: string;
  subgraphs: Record<string, SubgraphRuntime>;
  bus: EventBus;
  supergraphSdl: string;
  stop(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const { config } = options;
  const logger = options.logger ?? createLogger('stack', config.LOG_LEVEL);
  const fixed = (options.ports ?? 'fixed') === 'fixed';
  const sources = readSupergraphConfig(SUPERGRAPH_CONFIG);
  const wanted = SUBGRAPHS.filter((s) => !options.only || options.only.includes(s.name));
  const bus = options.bus ?? createBus(config, 'crm-stack', logger);
  await bus.prepare(ALL_TOPICS);

  const subgraphs: Record<string, SubgraphRuntime> = {};
  try {
    // One at a time: each start is CPU-bound (migrations, schema), and logs stay readable.
    for (const def of wanted) {
      const source = sources.find((s) => s.name === def.name);
      if (!source) throw new Error(`subgraph "${def.name}" is missing from supergraph.yaml`);
      const port = fixed ? Number(new URL(source.url).port) : 0;
      subgraphs[def.name] = await startSubgraph(def, {
        config: serviceView(def.name, config),
        port,
        bus,
        logger: logger.child({ subgraph: def.name }),
        // read-through to the subgraphs of this stack (they start one by one: looked up per call);
        // null for one this stack does not run at all (`only`)
        peerUrl: (name) => subgraphs[name]?.url ?? (wanted.some((w) => w.name === name) ? undefined : null),
      });
    }
    const supergraphSdl = composeSupergraph(sources.filter((s) => subgraphs[s.name]).map((s) => ({ ...s, url: subgraphs[s.name]!.url })));
    let gateway: GatewayRuntime | undefined;
    if (options.gateway ?? true) {
      if (fixed && config.DATA_DIR !== 'memory') {
        // The gateway serves a composed file and reloads it when it changes, as in production.
        mkdirSync(config.DATA_DIR, { recursive: true });
        const path = join(config.DATA_DIR, 'supergraph.graphql');
        const current = safeRead(path);
        if (current !== supergraphSdl) {
          writeFileSync(`${path}.tmp`, supergraphSdl);
          renameSync(`${path}.tmp`, path);
        }
        gateway = await startGateway({ config: serviceView('gateway', config), bus, supergraphPath: path, logger: logger.child({ service: 'gateway' }) });
      } else {
        gateway = await startGateway({
          config: serviceView('gateway', config),
          bus,
          supergraphSdl,
          port: fixed ? config.PORT : 0,
          host: '127.0.0.1',
          logger: logger.child({ service: 'gateway' }),
        });
      }
    }
    return {
      config,
      gateway,
      gatewayUrl: gateway?.url ?? '',
      subgraphs,
      bus,
      supergraphSdl,
      async stop() {
        if (gateway) await gateway.stop();
        for (const sg of Object.values(subgraphs).reverse()) await sg.stop();
        if (!options.bus) await bus.close();
      },
    };
  } catch (err) {
    for (const sg of Object.values(subgraphs)) await sg.stop().catch(() => undefined);
    if (!options.bus) await bus.close();
    throw err;
  }
}

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
