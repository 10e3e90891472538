/**
 * The platform with every core in use (STACK_PROCESSES=multi, the `npm start` default): each
 * subgraph and the gateway in a process of its own, started by the same entry its container runs
 * (subgraphs/<name>/src/main.ts, gateway/src/main.ts) with LAUNCHER=ipc, so a list request no
 * longer queues behind five other services on one event loop. Embedded mode works the same way
 * (each subgraph's PGlite lives in its process; the in-process bus is bridged over IPC, kit
 * ipc-bus.ts). The gateway can itself run GATEWAY_WORKERS processes behind its one port.
 *
 * Subgraphs start in parallel; the launcher composes the supergraph from the URLs they report,
 * tells each subgraph where its peers answer, then starts the gateway. stop() stops the gateway
 * first, then the subgraphs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ALL_TOPICS, IpcBus, PEERS, createBus, createLogger, developmentKeySet, generateKeySet, isKeyVariable, isReady, keyEnvFor, readConfig,
  type Logger, type PeersMessage, type PlatformConfig,
} from '@crm/kit';
import { composeSupergraph, readSupergraphConfig } from '@crm/gateway';
import { ROOT, SUPERGRAPH_CONFIG } from './start-stack';
import { SUBGRAPHS } from './subgraphs';

/** Each service's own entry, as its container runs it (Dockerfile). */
const GATEWAY_ENTRY = join(ROOT, 'gateway/src/main.ts');
const subgraphEntry = (name: string) => join(ROOT, 'subgraphs', name, 'src/main.ts');
const HOST = '127.0.0.1';

export interface ProcessStackOptions {
  /** Configuration on top of the environment (tests, benchmarks); passed to every process as env. */
  overrides?: Record<string, string>;
  /** 'fixed': the ports of supergraph.yaml and PORT; 'random': free ports. */
  ports?: 'fixed' | 'random';
  logger?: Logger;
  /** Extra node flags for every service process (e.g. --cpu-prof --cpu-prof-dir=…). */
  execArgv?: string[];
}

export interface ProcessStack {
  config: PlatformConfig;
  gatewayUrl: string;
  subgraphUrls: Record<string, string>;
  bus: { kind: 'kafka' | 'postgres' | 'memory' };
  supergraphSdl: string;
  /** Process ids: gateway and each subgraph. */
  pids: Record<string, number>;
  stop(): Promise<void>;
}

interface Service {
  name: string;
  child: ChildProcess;
  url: string;
}

export async function startProcessStack(options: ProcessStackOptions = {}): Promise<ProcessStack> {
  const overrides = options.overrides ?? {};
  const config = readConfig(process.env, overrides);
  const logger = options.logger ?? createLogger('stack', config.LOG_LEVEL);
  const fixed = (options.ports ?? 'fixed') === 'fixed';
  const given = { ...process.env, ...overrides };
  // Each child gets only its own keys (kit keys.ts, docs/security.md): every key variable is taken out
  // of what it inherits and its own are put back. Production: the operator's (<NAME>_SERVICE_KEY per
  // subgraph); development: a set made for this stack (DATA_DIR=memory) or kept under DATA_DIR.
  const env = Object.fromEntries(Object.entries(given).filter(([k]) => !isKeyVariable(k)));
  const keySource: Record<string, string | undefined> = config.production
    ? given
    : { ...(config.DATA_DIR === 'memory' ? generateKeySet(SUBGRAPHS.map((d) => d.name)) : developmentKeySet(config)), ...pickKeys(given) };
  // tsx's loader flags when this runs under tsx; else load tsx (the service entry is TypeScript).
  const loader = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : ['--import', 'tsx'];
  const execArgv = [...loader, ...(options.execArgv ?? [])];

  // Topics once here first, not racing from six processes; with neither Kafka nor Postgres this process is the bus's hub.
  const probe = createBus(config, 'crm-stack', logger);
  const kind = probe.kind;
  if (kind !== 'memory') await probe.prepare(ALL_TOPICS);
  await probe.close();
  const hub = kind === 'memory' ? new IpcBus(logger) : undefined;

  const children: ChildProcess[] = [];
  const start = (name: string, entry: string, serviceEnv: Record<string, string>) =>
    new Promise<Service>((resolve, reject) => {
      const child = fork(entry, [], { env: { ...env, ...keyEnvFor(name, keySource), ...serviceEnv, HOST, LAUNCHER: 'ipc' }, execArgv, stdio: 'inherit' });
      children.push(child);
      hub?.link(child);
      const onExit = (code: number | null, signal: string | null) => reject(new Error(`${name} exited (${signal ?? code}) before it was ready`));
      child.once('exit', onExit);
      child.on('message', (m) => {
        if (!isReady(m)) return;
        child.off('exit', onExit);
        const service = { name, child, url: m['crm-ready'].url };
        child.once('exit', (code, signal) => {
          if (!stopping) logger.error({ service: name, code, signal }, 'service process exited');
        });
        resolve(service);
      });
    });

  let stopping = false;
  let tmp: string | undefined;
  const stopAll = async () => {
    stopping = true;
    // gateway first, then the subgraphs (reverse start order)
    for (const child of [...children].reverse()) await terminate(child);
    await hub?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  };

  try {
    const sources = readSupergraphConfig(SUPERGRAPH_CONFIG);
    const subgraphs = await Promise.all(
      SUBGRAPHS.map((def) => {
        const source = sources.find((s) => s.name === def.name);
        if (!source) throw new Error(`subgraph "${def.name}" is missing from supergraph.yaml`);
        return start(def.name, subgraphEntry(def.name), { PORT: String(fixed ? Number(new URL(source.url).port) : 0) });
      }),
    );
    const subgraphUrls = Object.fromEntries(subgraphs.map((s) => [s.name, s.url]));
    for (const s of subgraphs) s.child.send({ [PEERS]: subgraphUrls } satisfies PeersMessage);
    const supergraphSdl = composeSupergraph(sources.map((s) => ({ ...s, url: subgraphUrls[s.name]! })));
    let path: string;
    if (fixed && config.DATA_DIR !== 'memory') {
      mkdirSync(config.DATA_DIR, { recursive: true });
      path = join(config.DATA_DIR, 'supergraph.graphql');
      writeFileSync(`${path}.tmp`, supergraphSdl);
      renameSync(`${path}.tmp`, path);
    } else {
      tmp = mkdtempSync(join(tmpdir(), 'crm-stack-'));
      path = join(tmp, 'supergraph.graphql');
      writeFileSync(path, supergraphSdl);
    }
    const gateway = await start('gateway', GATEWAY_ENTRY, { PORT: String(fixed ? config.PORT : 0), SUPERGRAPH_PATH: path });
    return {
      config,
      gatewayUrl: gateway.url,
      subgraphUrls,
      bus: { kind },
      supergraphSdl,
      pids: Object.fromEntries([...subgraphs, gateway].map((s) => [s.name, s.child.pid!])),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

/** The key variables the operator set (they win over generated development keys). */
function pickKeys(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => isKeyVariable(e[0]) && !!e[1]));
}

/** SIGTERM, then SIGKILL after 15 s. */
function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
