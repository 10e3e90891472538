import type { PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';
import type { EventBus } from './bus';
import { KafkaBus } from './kafka-bus';
import { MemoryBus } from './memory-bus';
import { PostgresBus, postgresBusUrl } from './postgres-bus';

/**
 * Which bus `config` selects: Kafka when KAFKA_BROKERS is set; else the event log in Postgres when
 * a Postgres server is configured (POSTGRES_URL or EVENTS_DATABASE_URL); else the in-process bus.
 * EVENT_BUS=kafka|postgres|memory forces one.
 */
export function busKind(config: PlatformConfig): 'kafka' | 'postgres' | 'memory' {
  if (config.EVENT_BUS !== 'auto') return config.EVENT_BUS;
  if (config.KAFKA_BROKERS.length > 0) return 'kafka';
  return postgresBusUrl(config) ? 'postgres' : 'memory';
}

/** The bus `config` selects (busKind). */
export function createBus(config: PlatformConfig, clientId: string, logger?: Logger): EventBus {
  const kind = busKind(config);
  if (kind === 'kafka') {
    if (config.KAFKA_BROKERS.length === 0) throw new Error('EVENT_BUS=kafka needs KAFKA_BROKERS');
    return new KafkaBus(config, clientId, logger);
  }
  if (kind === 'postgres') return new PostgresBus(config, clientId, logger);
  return new MemoryBus(logger);
}
export { KafkaBus, MemoryBus, PostgresBus };
export { PostgresLogAdmin, partitionFor, postgresBusUrl } from './postgres-bus';
export { BusBackpressureError } from './memory-bus';
