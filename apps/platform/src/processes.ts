/**
 * The platform with every core in use (STACK_PROCESSES=multi, the `npm start` default): each
 * subgraph and the gateway in a process of its own, started by the same entry its container runs
 * (subgraphs/<name>/src/main.ts, gateway/src/main.ts) with LAUNCHER=ipc, so a list request no
 * longer queues behind five other services on one event loop. Embedded mode works the same way
 * (the launcher starts the embedded Postgres first, embedded-database.ts; the in-process bus is bridged over IPC, kit
 * ipc-bus.ts). The gateway can itself run GATEWAY_WORKERS processes behind its one port.
 *
 * Subgraphs start in parallel. With the fixed ports of supergraph.yaml (`npm start`) the gateway
 * starts beside them on a supergraph composed from those URLs; with random ports (tests) the
 * launcher composes it from the URLs the subgraphs report, then starts the gateway. Each subgraph
 * is told where its peers answer. stop() stops the gateway first, then the subgraphs.
 *
 * It supervises: a service that exits or is killed once it has served is started again on the same
 * port (after 100 ms, then backing off up to 10 s while it keeps failing fast), and given up on,
 * loudly, after RESTART_LIMIT fast failures in a row. A child's death never takes the launcher
 * down (IPC to it fails quietly); the log and the gateway's /ready ("services") say which service
 * is down, restarting or given up on.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_TOPICS, IpcBus, createBus } from '@crm/events';
import { PEERS, SERVICES, developmentKeySet, generateKeySet, isKeyVariable, isReady, keyEnvFor, type PeersMessage, type ServiceStatus, type ServicesMessage } from '@crm/runtime';
import { createLogger, type Logger } from '@crm/telemetry';
import type { EmbeddedPostgres } from '@crm/database';
import { childEnv, readConfig, type PlatformConfig } from '@crm/config';
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
  /** The embedded Postgres this launcher supervises (main.ts): shown beside the services in the gateway's /ready. */
  database?: Pick<EmbeddedPostgres, 'status' | 'onStatus'>;
}

export interface ProcessStack {
  config: PlatformConfig;
  gatewayUrl: string;
  subgraphUrls: Record<string, string>;
  bus: { kind: 'kafka' | 'postgres' | 'memory' };
  supergraphSdl: string;
  /** Process ids: gateway and each subgraph (the current ones: a restarted service has a new pid). */
  pids: Record<string, number>;
  /** Each service's state as the supervisor sees it. */
  status(): Record<string, ServiceStatus>;
  /** Called on every change of a service's state (tests wait on it; no polling). */
  onStatus(listener: (name: string, status: ServiceStatus) => void): () => void;
  stop(): Promise<void>;
}

/** Restarts in a row, each after less than FAST_FAILURE_MS of service, before the supervisor gives up. */
export const RESTART_LIMIT = 5;
const FAST_FAILURE_MS = 30_000;
const backoff = (failures: number) => Math.min(100 * 4 ** (failures - 1), 10_000);

interface Service {
  name: string;
  entry: string;
  env: Record<string, string>;
  child?: ChildProcess;
  url: string;
  status: ServiceStatus;
  startedAt: number;
  failures: number;
}

export async function startProcessStack(options: ProcessStackOptions = {}): Promise<ProcessStack> {
  const overrides = options.overrides ?? {};
  const config = readConfig(undefined, overrides);
  const logger = options.logger ?? createLogger('stack', config.LOG_LEVEL);
  const fixed = (options.ports ?? 'fixed') === 'fixed';
  const given = childEnv(overrides);
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

  const services = new Map<string, Service>();
  const listeners = new Set<(name: string, status: ServiceStatus) => void>();
  let stopping = false;
  let subgraphUrls: Record<string, string> = {};

  /** The gateway shows every service's state in /ready, and the embedded Postgres's as `postgres`. */
  const announce = () => {
    const gateway = services.get('gateway')?.child;
    const all: Record<string, ServiceStatus> = Object.fromEntries([...services.values()].map((s) => [s.name, s.status]));
    if (options.database) all.postgres = options.database.status();
    if (gateway?.connected) gateway.send({ [SERVICES]: all } satisfies ServicesMessage, () => undefined);
  };
  const setStatus = (svc: Service, status: ServiceStatus) => {
    svc.status = status;
    for (const l of listeners) l(svc.name, status);
    announce();
  };
  const unwatchDatabase = options.database?.onStatus(announce);

  /** Forks the service's entry; resolves with its URL once it serves, rejects if it exits first. */
  const launch = (svc: Service) =>
    new Promise<string>((resolve, reject) => {
      const child = fork(svc.entry, [], { env: { ...env, ...keyEnvFor(svc.name, keySource), ...svc.env, HOST, LAUNCHER: 'ipc' }, execArgv, stdio: 'inherit' });
      svc.child = child;
      svc.startedAt = Date.now();
      // a send to a child that has just died fails with ERR_IPC_CHANNEL_CLOSED: its exit is handled below
      child.on('error', (err) => logger.warn({ service: svc.name, err: err.message }, 'service process: IPC error'));
      hub?.link(child);
      let ready = false;
      child.on('message', (m) => {
        if (!isReady(m) || ready) return;
        ready = true;
        svc.url = m['crm-ready'].url;
        resolve(svc.url);
      });
      child.once('exit', (code, signal) => {
        hub?.unlink(child);
        const how = signal ?? `code ${code}`;
        if (!ready) reject(new Error(`${svc.name} exited (${how}) before it was ready`));
        else if (!stopping) failed(svc, how);
      });
    });

  /** A service that served has exited: restart it with backoff, or give up after RESTART_LIMIT fast failures. */
  const failed = (svc: Service, how: string) => {
    if (stopping) return;
    if (Date.now() - svc.startedAt >= FAST_FAILURE_MS) svc.failures = 0;
    svc.failures += 1;
    if (svc.failures > RESTART_LIMIT) {
      setStatus(svc, { ...svc.status, state: 'failed', lastExit: how, pid: undefined });
      logger.fatal(
        { service: svc.name, exit: how, failures: svc.failures - 1 },
        `service ${svc.name} GIVEN UP: it failed ${RESTART_LIMIT} times in a row within ${FAST_FAILURE_MS / 1000} s of starting; the rest of the platform keeps running — fix it and restart the platform`,
      );
      return;
    }
    const delay = backoff(svc.failures);
    setStatus(svc, { ...svc.status, state: 'restarting', lastExit: how, pid: undefined });
    logger.error({ service: svc.name, exit: how, attempt: svc.failures, inMs: delay }, `service ${svc.name} exited (${how}); restarting`);
    setTimeout(() => {
      if (stopping) return;
      launch(svc).then(
        () => {
          if (stopping) return;
          if (svc.name !== 'gateway') svc.child!.send({ [PEERS]: subgraphUrls } satisfies PeersMessage, () => undefined);
          setStatus(svc, { state: 'up', restarts: svc.status.restarts + 1, lastExit: how, pid: svc.child!.pid });
          logger.warn({ service: svc.name, restarts: svc.status.restarts }, `service ${svc.name} is back`);
        },
        (err: unknown) => failed(svc, (err as Error).message),
      );
    }, delay).unref();
  };

  const start = async (name: string, entry: string, serviceEnv: Record<string, string>): Promise<Service> => {
    const svc: Service = { name, entry, env: serviceEnv, url: '', status: { state: 'starting', restarts: 0 }, startedAt: Date.now(), failures: 0 };
    services.set(name, svc);
    await launch(svc);
    // a restart comes back on the same port: the supergraph and the peers stay right
    svc.env = { ...serviceEnv, PORT: new URL(svc.url).port };
    setStatus(svc, { state: 'up', restarts: 0, pid: svc.child!.pid });
    return svc;
  };

  let tmp: string | undefined;
  const stopAll = async () => {
    stopping = true;
    unwatchDatabase?.();
    // gateway first, then the subgraphs (reverse start order)
    for (const svc of [...services.values()].reverse()) if (svc.child) await terminate(svc.child);
    await hub?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  };

  const startSubgraphs = (sources: ReturnType<typeof readSupergraphConfig>) =>
    Promise.all(
      SUBGRAPHS.map((def) => {
        const source = sources.find((s) => s.name === def.name);
        if (!source) throw new Error(`subgraph "${def.name}" is missing from supergraph.yaml`);
        return start(def.name, subgraphEntry(def.name), { PORT: String(fixed ? Number(new URL(source.url).port) : 0) });
      }),
    );
  const startGatewayOn = (supergraphSdl: string) => {
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
    return start('gateway', GATEWAY_ENTRY, { PORT: String(fixed ? config.PORT : 0), SUPERGRAPH_PATH: path });
  };

  try {
    const sources = readSupergraphConfig(SUPERGRAPH_CONFIG);
    let subgraphs: Service[];
    let supergraphSdl: string;
    if (fixed) {
      // The routing URLs are known before any subgraph runs, so the gateway loads beside them instead of
      // after them (most of a warm start is each process loading its modules); its /ready answers 200
      // only once every subgraph does.
      supergraphSdl = composeSupergraph(sources);
      [subgraphs] = await Promise.all([startSubgraphs(sources), startGatewayOn(supergraphSdl)]);
    } else {
      subgraphs = await startSubgraphs(sources);
      supergraphSdl = composeSupergraph(sources.map((s) => ({ ...s, url: subgraphs.find((g) => g.name === s.name)!.url })));
      await startGatewayOn(supergraphSdl);
    }
    subgraphUrls = Object.fromEntries(subgraphs.map((s) => [s.name, s.url]));
    for (const s of subgraphs) s.child!.send({ [PEERS]: subgraphUrls } satisfies PeersMessage, () => undefined);
    const gateway = services.get('gateway')!;
    return {
      config,
      gatewayUrl: gateway.url,
      subgraphUrls,
      bus: { kind },
      supergraphSdl,
      get pids() {
        return Object.fromEntries([...services.values()].map((s) => [s.name, s.child?.pid ?? 0]));
      },
      status: () => Object.fromEntries([...services.values()].map((s) => [s.name, s.status])),
      onStatus(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
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
