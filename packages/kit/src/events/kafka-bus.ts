/**
 * The Kafka adapter (kafkajs): an idempotent producer with acks=all, one consumer per group that
 * commits an offset only after its handler finished, topics provisioned with their .dlq, and
 * SSL/SASL from the environment for cloud brokers. A consumer that kafkajs will not restart
 * itself is rebuilt here, loudly, instead of staying dead.
 */
import { Kafka, Partitioners, logLevel, type Consumer, type KafkaConfig, type KafkaMessage, type Producer, type SASLOptions } from 'kafkajs';
import type { PlatformConfig } from '../config';
import type { Logger } from '../logger';
import type { BusMessage, DeliveredMessage, EventBus, SubscribeOptions, Subscription } from './bus';
import { dlqOf } from './catalogue';

export function kafkaConfigFrom(config: PlatformConfig, clientId: string, logger?: Logger): KafkaConfig {
  let sasl: SASLOptions | undefined;
  if (config.KAFKA_SASL_MECHANISM) {
    if (!config.KAFKA_USERNAME || !config.KAFKA_PASSWORD) throw new Error('KAFKA_USERNAME and KAFKA_PASSWORD are required with KAFKA_SASL_MECHANISM');
    sasl = { mechanism: config.KAFKA_SASL_MECHANISM, username: config.KAFKA_USERNAME, password: config.KAFKA_PASSWORD } as SASLOptions;
  }
  return {
    clientId: config.KAFKA_CLIENT_ID ?? clientId,
    brokers: config.KAFKA_BROKERS,
    ssl: config.KAFKA_SSL,
    ...(sasl ? { sasl } : {}),
    connectionTimeout: 5000,
    retry: { retries: 5, initialRetryTime: 200 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      const { message, ...extra } = log;
      if (!logger) return;
      if (level <= logLevel.ERROR) logger.error(extra, `kafka: ${message}`);
      else logger.warn(extra, `kafka: ${message}`);
    },
  };
}

/** Runs `fn` until it succeeds, for at most ~30 s, with growing pauses; the last error is rethrown. */
async function retrying(what: string, logger: Logger | undefined, fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      logger?.warn({ err: (err as Error).message, attempt }, `kafka: ${what} not ready yet; retrying`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)));
    }
  }
}

export class KafkaBus implements EventBus {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private readonly consumers = new Set<Consumer>();
  private connected = false;
  private readonly ns: string;

  constructor(private readonly config: PlatformConfig, clientId: string, private readonly logger?: Logger) {
    this.kafka = new Kafka(kafkaConfigFrom(config, clientId, logger));
    this.ns = config.KAFKA_NAMESPACE;
  }

  private topic = (logical: string) => `${this.ns}${logical}`;
  private logical = (physical: string) => (this.ns && physical.startsWith(this.ns) ? physical.slice(this.ns.length) : physical);

  private getProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      producer.on(producer.events.DISCONNECT, () => {
        this.connected = false;
      });
      this.producerReady = producer.connect().then(
        () => {
          this.producer = producer;
          this.connected = true;
          return producer;
        },
        (err: unknown) => {
          this.producerReady = undefined;
          throw err;
        },
      );
    }
    return this.producerReady;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const producer = await this.getProducer();
    const byTopic = new Map<string, BusMessage[]>();
    for (const m of messages) byTopic.set(m.topic, [...(byTopic.get(m.topic) ?? []), m]);
    try {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, list]) => ({
          topic: this.topic(topic),
          messages: list.map((m) => ({ key: m.key, value: m.value, ...(m.headers ? { headers: m.headers } : {}) })),
        })),
      });
    } catch (err) {
      // Start over with a fresh producer next time: after an outage kafkajs may keep a dead one.
      this.connected = false;
      this.producerReady = undefined;
      this.producer = undefined;
      void producer.disconnect().catch(() => undefined);
      throw err;
    }
    this.connected = true;
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    let stopped = false;
    let consumer: Consumer | undefined;
    const start = async (): Promise<void> => {
      const c = this.kafka.consumer({
        groupId: this.topic(options.groupId),
        sessionTimeout: 30_000,
        heartbeatInterval: 3_000,
        retry: { retries: 8, initialRetryTime: 300 },
      });
      consumer = c;
      this.consumers.add(c);
      c.on(c.events.CRASH, (event) => {
        const { error, restart } = event.payload;
        this.logger?.error({ err: error.message, group: options.groupId, restart }, 'kafka consumer crashed');
        if (!restart && !stopped) {
          this.consumers.delete(c);
          // kafkajs gave up on it: rebuild it after a pause rather than stay dead silently.
          setTimeout(() => void start().catch((err: unknown) => this.logger?.error({ err }, 'kafka consumer restart failed')), 2000);
        }
      });
      // A just-created topic can be briefly unknown to the broker that answers (UNKNOWN_TOPIC_OR_PARTITION): retry.
      await retrying(`subscribe ${options.groupId}`, this.logger, async () => {
        await c.connect();
        await c.subscribe({ topics: options.topics.map(this.topic), fromBeginning: !options.fromLatest });
      });
      const deliver = (topic: string, partition: number, message: KafkaMessage): DeliveredMessage => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
        return { topic: this.logical(topic), partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value, headers };
      };
      const { handle, handleBatch } = options;
      if (handleBatch) {
        const size = options.batchSize ?? 500;
        // Chunks of one partition's fetch, in order; the offset moves (and is committed) only
        // after a chunk's handler returned, so a crash redelivers at most one chunk.
        await c.run({
          autoCommit: true,
          eachBatchAutoResolve: false,
          // Partitions are independent (order is per key, so per partition): work on them at once.
          partitionsConsumedConcurrently: options.partitionsConcurrently ?? 1,
          eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
            const control = { heartbeat, active: () => !stopped && isRunning() && !isStale() };
            for (let i = 0; i < batch.messages.length && control.active(); i += size) {
              const chunk = batch.messages.slice(i, i + size);
              await handleBatch(chunk.map((m) => deliver(batch.topic, batch.partition, m)), control);
              resolveOffset(chunk[chunk.length - 1]!.offset);
              await commitOffsetsIfNecessary();
              await heartbeat();
            }
          },
        });
      } else if (handle) {
        await c.run({ autoCommit: true, eachMessage: async ({ topic, partition, message }) => handle(deliver(topic, partition, message)) });
      } else throw new Error('subscribe needs handle or handleBatch');
    };
    await start();
    return {
      stop: async () => {
        stopped = true;
        if (consumer) {
          this.consumers.delete(consumer);
          await consumer.disconnect();
        }
      },
    };
  }

  async ensureTopics(topics: string[]): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const wanted = [...new Set(topics.flatMap((t) => [t, dlqOf(t)]))].map(this.topic).filter((t) => !existing.has(t));
      if (wanted.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: wanted.map((topic) => ({
          topic,
          // A DLQ has the partitions of its source (keys keep their partition) and its own, longer retention.
          numPartitions: this.config.KAFKA_TOPIC_PARTITIONS,
          replicationFactor: -1,
          configEntries: [
            { name: 'retention.ms', value: String(topic.endsWith('.dlq') ? this.config.KAFKA_DLQ_RETENTION_MS : this.config.KAFKA_TOPIC_RETENTION_MS) },
          ],
        })),
      });
      this.logger?.info({ topics: wanted }, 'kafka topics created');
      // New topics take a moment to reach every client's metadata; wait until each partition has a leader.
      const all = [...new Set(topics.flatMap((t) => [t, dlqOf(t)]))].map(this.topic);
      await retrying('topic metadata', this.logger, async () => {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics: all });
        const missing = all.filter((t) => !meta.some((m) => m.name === t && m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0)));
        if (missing.length > 0) throw new Error(`no leader yet for ${missing.join(', ')}`);
      });
    } finally {
      await admin.disconnect();
    }
  }

  async healthy(): Promise<boolean> {
    if (this.connected) return true;
    try {
      await this.getProducer();
      return true;
    } catch {
      return false;
    }
  }

  /** The admin client, for the status command and tests. */
  admin() {
    return this.kafka.admin();
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.disconnect().catch(() => undefined)));
    this.consumers.clear();
    if (this.producer) await this.producer.disconnect().catch(() => undefined);
  }
}
