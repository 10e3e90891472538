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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `promise`, or `fallback` once `ms` have passed; the timer is cleared either way, so it never holds the process open. */
async function orAfter<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Growing pauses between attempts: 200 ms, 400 ms, … capped at `capMs`. */
const backoff = (attempt: number, capMs = 5000) => Math.min(capMs, 200 * 2 ** Math.min(attempt - 1, 10));

/**
 * Runs `fn` until it succeeds or `deadlineMs` passes (then the last error is rethrown); `Infinity`
 * retries until `stopped()` says so. Every failure is logged with its attempt number.
 */
async function retrying<T>(what: string, logger: Logger | undefined, fn: () => Promise<T>, deadlineMs = 30_000, stopped = () => false): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline || stopped()) throw err;
      logger?.warn({ err: (err as Error).message, attempt }, `kafka: ${what} not ready yet; retrying`);
      await sleep(backoff(attempt));
    }
  }
}

/** A broker that cannot be reached at all (as opposed to one that answers with an error). */
export function isUnreachable(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown; originalError?: unknown } | undefined; e; e = (e.cause ?? e.originalError) as typeof e) {
    if (e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSBrokerNotFound' || e.name === 'KafkaJSRequestTimeoutError') return true;
  }
  return false;
}

export class KafkaBus implements EventBus {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private readonly consumers = new Set<Consumer>();
  private connected = false;
  private closed = false;
  /** Set by prepare(): resolves once the topics exist with a leader for every partition. */
  private provisioned: Promise<void> | undefined;
  private provisionedDone = false;
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

  /**
   * Provisions `topics` in the background, retrying until the broker answers (a service must start
   * and serve while Kafka is away). Resolves 'ready' once they exist, or 'degraded' as soon as the
   * broker proves unreachable or `waitMs` passes; provisioning and consumers then go on by themselves.
   */
  async prepare(topics: string[], waitMs = 60_000): Promise<'ready' | 'degraded'> {
    if (!this.provisioned) {
      let firstFailure!: (err: unknown) => void;
      const failedOnce = new Promise<unknown>((resolve) => (firstFailure = resolve));
      let attempts = 0;
      this.provisioned = retrying('topic provisioning', this.logger, async () => {
        attempts += 1;
        try {
          await this.ensureTopics(topics);
        } catch (err) {
          if (attempts === 1) firstFailure(err);
          throw err;
        }
      }, Infinity, () => this.closed).then(() => {
        this.provisionedDone = true;
        if (attempts > 1) this.logger?.info('kafka: reachable again; topics provisioned, consumers joining');
      });
      this.provisioned.catch(() => undefined);
      void failedOnce.then((err) => {
        if (isUnreachable(err)) this.logger?.warn({ err: (err as Error).message }, 'kafka: broker unreachable; serving without events until it is back (writes wait in the outbox)');
      });
      this.unreachableAtStart = failedOnce.then((err) => isUnreachable(err));
    }
    const settled = Promise.race([
      this.provisioned.then(() => 'ready' as const, () => 'degraded' as const),
      this.unreachableAtStart!.then((down) => (down ? ('degraded' as const) : new Promise<never>(() => undefined))),
    ]);
    return orAfter(settled, waitMs, 'degraded' as const);
  }

  private unreachableAtStart: Promise<boolean> | undefined;

  /**
   * Starts a consumer and keeps it started: it joins as soon as the topics are provisioned and the
   * broker answers, and is rebuilt if kafkajs gives up on it. Returns at once when the broker is
   * known to be away; otherwise once the consumer has joined (or after 60 s, still trying).
   */
  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    let stopped = false;
    let active = false;
    let consumer: Consumer | undefined;
    const startOnce = async (): Promise<void> => {
      const c = this.kafka.consumer({
        groupId: this.topic(options.groupId),
        sessionTimeout: 30_000,
        heartbeatInterval: 3_000,
        retry: { retries: 8, initialRetryTime: 300 },
      });
      c.on(c.events.CRASH, (event) => {
        const { error, restart } = event.payload;
        this.logger?.error({ err: error.message, group: options.groupId, restart }, 'kafka consumer crashed');
        if (!restart && !stopped && consumer === c) {
          active = false;
          this.consumers.delete(c);
          // kafkajs gave up on it: rebuild it after a pause rather than stay dead silently.
          setTimeout(() => void keepStarting(), 2000);
        }
      });
      c.on(c.events.GROUP_JOIN, () => {
        if (consumer === c) active = true;
      });
      try {
        await c.connect();
        await c.subscribe({ topics: options.topics.map(this.topic), fromBeginning: !options.fromLatest });
        if (stopped) throw new Error('stopped');
        consumer = c;
        this.consumers.add(c);
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
        active = true;
      } catch (err) {
        this.consumers.delete(c);
        if (consumer === c) consumer = undefined;
        await c.disconnect().catch(() => undefined);
        throw err;
      }
    };
    const keepStarting = (): Promise<void> =>
      retrying(`consumer ${options.groupId}`, this.logger, startOnce, Infinity, () => stopped || this.closed).catch((err: unknown) => {
        if (!stopped && !this.closed) this.logger?.error({ err, group: options.groupId }, 'kafka consumer could not start');
      });
    const started = (this.provisioned ?? Promise.resolve()).then(keepStarting, keepStarting);
    if (!(this.provisioned && !this.provisionedDone && (await this.knownUnreachable()))) {
      await orAfter(started, 60_000, undefined);
    }
    return {
      active: () => active && !stopped,
      stop: async () => {
        stopped = true;
        active = false;
        if (consumer) {
          this.consumers.delete(consumer);
          await consumer.disconnect();
        }
      },
    };
  }

  private async knownUnreachable(): Promise<boolean> {
    if (!this.unreachableAtStart) return false;
    return Promise.race([this.unreachableAtStart, Promise.resolve(false)]);
  }

  /**
   * Creates the topics (and their .dlq) that do not exist yet and waits until every partition has
   * a leader. Safe on a brand-new broker, where a just-created topic is briefly unknown to the
   * broker that answers ("This server does not host this topic-partition"): kafkajs'
   * `waitForLeaders` does not retry that code, so this does its own bounded wait.
   */
  async ensureTopics(topics: string[], deadlineMs = 60_000): Promise<void> {
    const all = [...new Set(topics.flatMap((t) => [t, dlqOf(t)]))].map(this.topic);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await retrying('topic creation', this.logger, async () => {
        const existing = new Set(await admin.listTopics());
        const wanted = all.filter((t) => !existing.has(t));
        if (wanted.length === 0) return;
        try {
          await admin.createTopics({
            waitForLeaders: false,
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
        } catch (err) {
          // Another client created some of them meanwhile: the next round sees them in listTopics.
          if (!isTopicExists(err)) throw err;
        }
        this.logger?.info({ topics: wanted }, 'kafka topics created');
      }, deadlineMs);
      await retrying('topic leaders', this.logger, async () => {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics: all });
        const missing = all.filter((t) => !meta.some((m) => m.name === t && m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0)));
        if (missing.length > 0) throw new Error(`no leader yet for ${missing.join(', ')}`);
      }, deadlineMs);
    } finally {
      await admin.disconnect();
    }
  }

  /** Answers at once from what the producer last saw; a down broker is re-tried in the background. */
  async healthy(): Promise<boolean> {
    if (this.connected) return true;
    if (!this.closed) void this.getProducer().catch(() => undefined);
    return false;
  }

  /** The admin client, for the status command and tests. */
  admin() {
    return this.kafka.admin();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.disconnect().catch(() => undefined)));
    this.consumers.clear();
    if (this.producer) await this.producer.disconnect().catch(() => undefined);
  }
}

function isTopicExists(err: unknown): boolean {
  const e = err as { type?: string; errors?: { type?: string }[] };
  if (e.type === 'TOPIC_ALREADY_EXISTS') return true;
  return Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((x) => x.type === 'TOPIC_ALREADY_EXISTS');
}
