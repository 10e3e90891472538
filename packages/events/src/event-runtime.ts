import type { EntityManager } from '@mikro-orm/postgresql';
import type { PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';

/**
 * What the event path needs of the service it runs in: its name, configuration, logger and a fresh
 * EntityManager. The subgraph runtime (@crm/runtime's SubgraphRuntime) is one; the event path
 * depends on this narrow interface, never on the runtime (which depends on the event path).
 */
export interface EventRuntime {
  name: string;
  config: PlatformConfig;
  logger: Logger;
  /** A fresh EntityManager for work outside a request (jobs, start-up). */
  fork(): EntityManager;
}

/** A periodic job of the event path (e.g. retention); the runtime runs it as one of its jobs. */
export interface EventJob {
  name: string;
  intervalMs(config: PlatformConfig): number;
  run(runtime: EventRuntime): Promise<void>;
}
