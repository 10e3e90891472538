/**
 * How a service talks to the platform launcher that forked it (LAUNCHER=ipc; the multi-process
 * mode of apps/platform): it says when it serves (READY), learns where its peers answer (PEERS),
 * and without Kafka bridges its bus to the other processes over the same channel (IpcBus).
 * Started any other way (LAUNCHER=none: a container, a terminal) none of this applies.
 */
import type { PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';
import { createBus } from '@crm/events';
import type { EventBus } from '@crm/events';
import { ALL_TOPICS } from '@crm/events';
import { IpcBus, type IpcLink } from '@crm/events';

/** What a service process sends the launcher once it serves. */
export const READY = 'crm-ready';
export interface ReadyMessage {
  [READY]: { url: string; port: number };
}
export const isReady = (m: unknown): m is ReadyMessage => typeof m === 'object' && m !== null && READY in m;

/** The launcher tells each subgraph where its peers answer (read-through), once all are up. */
export const PEERS = 'crm-peers';
export interface PeersMessage {
  [PEERS]: Record<string, string>;
}
export const isPeers = (m: unknown): m is PeersMessage => typeof m === 'object' && m !== null && PEERS in m;

/** The launcher tells the gateway the state of every service it supervises (shown by /ready). */
export const SERVICES = 'crm-services';
export interface ServiceStatus {
  state: 'starting' | 'up' | 'restarting' | 'failed';
  restarts: number;
  pid?: number;
  /** How its last process ended (signal or exit code). */
  lastExit?: string;
}
export interface ServicesMessage {
  [SERVICES]: Record<string, ServiceStatus>;
}
export const isServices = (m: unknown): m is ServicesMessage => typeof m === 'object' && m !== null && SERVICES in m;

/** The services' states as the launcher last announced them (empty when not under the launcher). */
export function servicesFromLauncher(link: IpcLink | undefined): () => Record<string, ServiceStatus> | undefined {
  let latest: Record<string, ServiceStatus> | undefined;
  link?.on('message', (m) => {
    if (isServices(m)) latest = m[SERVICES];
  });
  return () => latest;
}

/** The IPC channel to the launcher (or, in a cluster worker, to its primary) when LAUNCHER=ipc. */
export function launcherLink(config: PlatformConfig): IpcLink | undefined {
  if (config.LAUNCHER !== 'ipc') return undefined;
  if (!process.send) throw new Error('LAUNCHER=ipc, but this process has no IPC channel (start it with child_process.fork)');
  return process as unknown as IpcLink;
}

/**
 * A service's bus: Kafka or the Postgres event log when configured (topics provisioned, or in the
 * background while the broker is away); else, under the launcher, the in-process bus bridged over
 * IPC; else the in-process bus of this process alone.
 */
export async function serviceBus(config: PlatformConfig, clientId: string, logger: Logger): Promise<EventBus> {
  const bus = createBus(config, clientId, logger);
  const link = launcherLink(config);
  if (bus.kind !== 'memory' || !link) {
    await bus.prepare(ALL_TOPICS);
    return bus;
  }
  await bus.close();
  const ipc = new IpcBus(logger);
  ipc.link(link);
  return ipc;
}

/** Tells the launcher (if any) that this service serves at `url`. */
export function announceReady(config: PlatformConfig, url: string, port: number): void {
  launcherLink(config)?.send({ [READY]: { url, port } } satisfies ReadyMessage);
}

/** Peer URLs as the launcher announces them (it sends them once every subgraph is up). */
export function peersFromLauncher(link: IpcLink): Map<string, string> {
  const peers = new Map<string, string>();
  link.on('message', (m) => {
    if (isPeers(m)) for (const [name, url] of Object.entries(m[PEERS])) peers.set(name, url);
  });
  return peers;
}

/**
 * Runs `stop` once on SIGTERM, SIGINT or the parent's going away (an IPC channel closing), then
 * exits: 0 when it stopped cleanly, 1 when stopping failed. Signals that come while it stops are ignored.
 */
export function onShutdown(stop: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  // `on`, not `once`: a repeated signal (a second Ctrl-C reaching the launcher's process group)
  // must not find this process without a listener, or tsx's preload exits it mid-stop.
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.once('disconnect', shutdown);
}
