import type { PlatformConfig } from '../config';
import type { Logger } from '../logger';
import type { EventBus } from './bus';
import { KafkaBus } from './kafka-bus';
import { MemoryBus } from './memory-bus';

/** Which bus `config` selects: Kafka when KAFKA_BROKERS is set (unless EVENT_BUS=memory); otherwise the in-process bus. */
export function busKind(config: PlatformConfig): 'kafka' | 'memory' {
  return config.EVENT_BUS === 'kafka' || (config.EVENT_BUS === 'auto' && config.KAFKA_BROKERS.length > 0) ? 'kafka' : 'memory';
}

/** The bus `config` selects (busKind). */
export function createBus(config: PlatformConfig, clientId: string, logger?: Logger): EventBus {
  if (busKind(config) === 'kafka') {
    if (config.KAFKA_BROKERS.length === 0) throw new Error('EVENT_BUS=kafka needs KAFKA_BROKERS');
    return new KafkaBus(config, clientId, logger);
  }
  return new MemoryBus(logger);
}
export { KafkaBus, MemoryBus };
export { BusBackpressureError } from './memory-bus';
