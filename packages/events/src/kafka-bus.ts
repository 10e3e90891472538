/**
 * The Kafka adapter (@platformatic/kafka): an idempotent producer with acks=all and Java's murmur2
 * partitioner, consumers that commit an offset only after the handler finished, topics provisioned
 * with their .dlq, and SSL/SASL from the environment for cloud brokers. A consumer whose stream
 * fails (broker away, group error) is rebuilt here, loudly, instead of staying dead.
 *
 * The client streams messages one by one; this adapter gives handlers what the port promises:
 * batches of consecutive messages of one partition (partitions handled at the same time up to
 * `partitionsConcurrently`), a commit after each batch, the batch again after a throw, and after a
 * rebalance a fresh stream from the committed offsets (batches of the old assignment are given up).
 */
import { Consumer, Producer, compatibilityPartitioner, stringSerializers, type BaseOptions, type Message, type MessagesStream, type SASLOptions } from '@platformatic/kafka';
import type { PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';
import type { BatchControl, BusMessage, DeliveredMessage, EventBus, SubscribeOptions, Subscription } from './bus';
import { onlyOwnReplays } from './bus';
import { dlqOf } from './catalogue';
import { KafkaAdmin } from './kafka-admin';
import { retry } from '@crm/errors';

const MECHANISMS = { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512' } as const;

/** Connection options of every client: brokers, TLS and SASL from the config. */
export function kafkaOptionsFrom(config: PlatformConfig, clientId: string): BaseOptions {
  let sasl: SASLOptions | undefined;
  if (config.KAFKA_SASL_MECHANISM) {
    if (!config.KAFKA_USERNAME || !config.KAFKA_PASSWORD) throw new Error('KAFKA_USERNAME and KAFKA_PASSWORD are required with KAFKA_SASL_MECHANISM');
    sasl = { mechanism: MECHANISMS[config.KAFKA_SASL_MECHANISM], username: config.KAFKA_USERNAME, password: config.KAFKA_PASSWORD };
  }
  return {
    clientId: config.KAFKA_CLIENT_ID ?? clientId,
    bootstrapBrokers: config.KAFKA_BROKERS,
    // TLS with Node's defaults (system CAs, host name checked), as kafkajs' `ssl: true` did
    ...(config.KAFKA_SSL ? { tls: {} } : {}),
    ...(sasl ? { sasl } : {}),
    connectTimeout: 5000,
    timeout: 10_000,
    retries: 3,
    retryDelay: 300,
  };
}

/** `promise`, or `fallback` once `ms` have passed; the timer is cleared either way, so it never holds the process open. */
async function orAfter<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Pauses between attempts: 200 ms, 400 ms, … capped at 5 s (the kit's one retry helper). */
const BACKOFF = { baseDelayMs: 200, maxDelayMs: 5000 } as const;

/**
 * Runs `fn` until it succeeds or `deadlineMs` passes (then the last error is rethrown); `Infinity`
 * retries until `stopped()` says so. Every failure is logged with its attempt number.
 */
function retrying<T>(what: string, logger: Logger | undefined, fn: () => Promise<T>, deadlineMs = 30_000, stopped = () => false): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  return retry(() => fn(), {
    ...BACKOFF,
    shouldRetry: () => Date.now() <= deadline && !stopped(),
    onRetry: ({ error, attempt }) => logger?.warn({ err: (error as Error).message, attempt }, `kafka: ${what} not ready yet; retrying`),
  });
}

/** A redelivery that no longer belongs to this consumer (stopped, or the partitions moved). */
class NotCurrent extends Error {}

/** Leaves the group and closes without waiting for streams to drain. */
const closeNow = (c: Consumer) => (c as unknown as { close(force: boolean): Promise<void> }).close(true);

/** Whether the broker answered with the protocol error `apiId` (e.g. OFFSET_OUT_OF_RANGE) anywhere in `err`. */
function hasApiError(err: unknown, apiId: string, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 6) return false;
  const e = err as { apiId?: unknown; cause?: unknown; errors?: unknown };
  if (e.apiId === apiId) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => hasApiError(x, apiId, depth + 1))) return true;
  return hasApiError(e.cause, apiId, depth + 1);
}

/** A broker that cannot be reached at all (as opposed to one that answers with an error). */
export function isUnreachable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT' || e.code === 'ECONNREFUSED' || e.code === 'ETIMEDOUT' || e.code === 'EHOSTUNREACH' || e.code === 'ENOTFOUND') return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isUnreachable(x, depth + 1))) return true;
  return isUnreachable(e.cause, depth + 1);
}

export class KafkaBus implements EventBus {
  readonly kind = 'kafka' as const;
  private readonly options: BaseOptions;
  private producer: Producer<string, string, string, string> | undefined;
  private readonly consumers = new Set<{ close(): Promise<void> }>();
  private connected = false;
  private closed = false;
  /** Set by prepare(): resolves once the topics exist with a leader for every partition. */
  private provisioned: Promise<void> | undefined;
  private provisionedDone = false;
  private readonly ns: string;
  private sharedAdmin: KafkaAdmin | undefined;

  constructor(private readonly config: PlatformConfig, clientId: string, private readonly logger?: Logger) {
    this.options = kafkaOptionsFrom(config, clientId);
    this.ns = config.KAFKA_NAMESPACE;
  }

  private topic = (logical: string) => `${this.ns}${logical}`;
  private logical = (physical: string) => (this.ns && physical.startsWith(this.ns) ? physical.slice(this.ns.length) : physical);

  private getProducer(): Producer<string, string, string, string> {
    this.producer ??= new Producer({
      ...this.options,
      idempotent: true,
      acks: -1,
      // Java's partitioner: toPositive(murmur2(key)) % partitions, as kafkajs' default did (the
      // client's own default takes murmur2 >>> 0, which puts some keys on other partitions).
      partitioner: compatibilityPartitioner,
      serializers: stringSerializers,
      autocreateTopics: false,
    });
    return this.producer;
  }

  /** Drops the producer (a fresh one next time: its idempotence sequence starts over). */
  private resetProducer(): void {
    const old = this.producer;
    this.producer = undefined;
    this.connected = false;
    void old?.close().catch(() => undefined);
  }

  /**
   * One send at a time (kafkajs: maxInFlightRequests 1). The client's idempotent producer advances
   * a partition's sequence number only when a send's answer arrives, so two sends at once to one
   * partition carry the same sequence and the broker drops the second as a duplicate, silently.
   */
  publish(messages: BusMessage[]): Promise<void> {
    const turn = this.sending.then(() => this.send(messages));
    this.sending = turn.catch(() => undefined);
    return turn;
  }

  private sending: Promise<unknown> = Promise.resolve();

  private async send(messages: BusMessage[]): Promise<void> {
    if (messages.length === 0) return;
    if (this.closed) throw new Error('bus is closed');
    const producer = this.getProducer();
    try {
      await producer.send({
        messages: messages.map((m) => ({ topic: this.topic(m.topic), key: m.key, value: m.value, ...(m.headers ? { headers: m.headers } : {}) })),
      });
    } catch (err) {
      this.resetProducer();
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
   * broker answers, and is rebuilt whenever its stream fails. Returns at once when the broker is
   * known to be away; otherwise once the consumer has joined (or after 60 s, still trying).
   */
  async subscribe(given: SubscribeOptions): Promise<Subscription> {
    const options = onlyOwnReplays(given); // a replayed dead letter reaches only the group that failed it
    const { handle, handleBatch } = options;
    if (!handle && !handleBatch) throw new Error('subscribe needs handle or handleBatch');
    const size = handleBatch ? (options.batchSize ?? 500) : 100;
    const concurrency = handleBatch ? Math.max(1, options.partitionsConcurrently ?? 1) : 1;
    const run = handleBatch ?? (async (messages: DeliveredMessage[]) => {
      for (const m of messages) await handle!(m);
    });
    let stopped = false;
    let consumer: Consumer | undefined;
    /** Bumped for each new stream (start, rebalance): batches of an older one are given up, not committed. */
    let epoch = 0;
    const workers = new Set<Promise<void>>();

    const deliver = (m: Message): DeliveredMessage => {
      const headers: Record<string, string> = {};
      for (const [k, v] of m.headers) if (v !== undefined) headers[k.toString()] = v.toString();
      return { topic: this.logical(m.topic), partition: m.partition, offset: String(m.offset), key: m.key?.toString() ?? null, value: m.value ?? null, headers };
    };

    /** Reads one stream: messages queued per partition, each partition's queue worked in batches, in order. */
    const pump = (c: Consumer, stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>, mine: number) => {
      const queues = new Map<string, Message[]>();
      const busy = new Set<string>();
      let queued = 0;
      const limit = Math.max(size * 2, 1000);
      const current = () => !stopped && !this.closed && epoch === mine;
      const control: BatchControl = { heartbeat: async () => undefined, active: current };

      const work = async (key: string) => {
        const queue = queues.get(key)!;
        while (queue.length > 0 && current()) {
          const chunk = queue.splice(0, size);
          queued -= chunk.length;
          if (stream.isPaused() && queued < limit / 2) stream.resume();
          const batch = chunk.map(deliver);
          // like a consumer that did not commit: the same batch again, for as long as it is ours
          const handled = await retry(
            async (attempt) => {
              if (attempt > 1 && !current()) throw new NotCurrent();
              await run(batch, control);
              return true;
            },
            {
              ...BACKOFF,
              shouldRetry: (err) => !(err instanceof NotCurrent) && current(),
              onRetry: ({ error, attempt }) =>
                this.logger?.error({ err: error, group: options.groupId, topic: batch[0]!.topic, partition: batch[0]!.partition, attempt }, 'kafka: batch handler threw; redelivering'),
            },
          ).catch(() => false);
          if (!handled || !current()) return; // partitions may have moved: the next owner starts from the last commit
          try {
            await chunk[chunk.length - 1]!.commit();
          } catch (err) {
            this.logger?.warn({ err: (err as Error).message, group: options.groupId }, 'kafka: offset commit failed (the batch may come again)');
          }
        }
      };
      const schedule = () => {
        for (const key of queues.keys()) {
          if (busy.size >= concurrency) return;
          if (busy.has(key) || queues.get(key)!.length === 0) continue;
          busy.add(key);
          const w = work(key).finally(() => {
            busy.delete(key);
            workers.delete(w);
            if (current()) schedule();
          });
          workers.add(w);
        }
      };
      stream.on('data', (m: Message) => {
        if (!current()) return;
        const key = `${m.topic}:${m.partition}`;
        let queue = queues.get(key);
        if (!queue) queues.set(key, (queue = []));
        queue.push(m);
        queued += 1;
        if (queued >= limit) stream.pause();
        schedule();
      });
      stream.on('error', (err) => {
        if (epoch !== mine || stopped || this.closed) return;
        if (hasApiError(err, 'OFFSET_OUT_OF_RANGE')) {
          // The committed offset is gone (retention deleted it) or past the end: rather than fail
          // the same fetch for ever, move it by the group's offset-reset policy, then read on.
          epoch += 1;
          void resetOutOfRange(c).catch((e: unknown) => this.logger?.error({ err: (e as Error).message, group: options.groupId }, 'kafka: offset reset failed; retrying')).finally(() => {
            if (consumer === c) void rebuild(c);
          });
          return;
        }
        this.logger?.error({ err: err.message, group: options.groupId }, 'kafka consumer stream failed; rebuilding the consumer');
        void rebuild(c);
      });
    };

    /** Commits, for each partition whose committed offset is out of range, the start (earliest) or end (latest) of what is kept. */
    const resetOutOfRange = async (c: Consumer) => {
      const policy = options.fromLatest ? 'latest' : 'earliest';
      const admin = this.admin();
      try {
        const physical = options.topics.map(this.topic);
        const committed = await admin.committedOffsets(this.topic(options.groupId), physical);
        const offsets: { topic: string; partition: number; offset: bigint; leaderEpoch: number }[] = [];
        for (const topic of physical) {
          for (const { partition, low, high } of await admin.topicOffsets(topic)) {
            const at = committed.get(topic)?.get(partition);
            if (at === undefined || at < 0n || (at >= low && at <= high)) continue;
            offsets.push({ topic, partition, offset: policy === 'latest' ? high : low, leaderEpoch: -1 });
          }
        }
        if (offsets.length === 0) return;
        this.logger?.error(
          { group: options.groupId, policy, partitions: offsets.map((o) => `${this.logical(o.topic)}/${o.partition}@${committed.get(o.topic)?.get(o.partition)}→${o.offset}`) },
          `kafka: committed offset out of range (deleted by retention?); reset to the ${policy} kept offset by the group's offset-reset policy`,
        );
        await c.commit({ offsets });
      } finally {
        await admin.close().catch(() => undefined);
      }
    };

    const openStream = async (c: Consumer) => {
      const stream = await c.consume({
        topics: options.topics.map(this.topic),
        mode: 'committed',
        fallbackMode: options.fromLatest ? 'latest' : 'earliest',
        autocommit: false,
        maxWaitTime: 500,
        highWaterMark: Math.max(size, 1024),
      });
      epoch += 1;
      pump(c, stream, epoch);
      return stream;
    };

    const startOnce = async (): Promise<void> => {
      const c = new Consumer({
        ...this.options,
        groupId: this.topic(options.groupId),
        // A crashed member's partitions move after the session timeout (docs/consumer-takeover.md).
        sessionTimeout: this.config.KAFKA_SESSION_TIMEOUT_MS,
        rebalanceTimeout: 60_000,
        heartbeatInterval: this.config.KAFKA_HEARTBEAT_INTERVAL_MS,
        // Static membership: the replica's stable name (instance ids are per group; a process consumes a group once).
        ...(this.config.KAFKA_GROUP_INSTANCE_ID ? { groupInstanceId: this.config.KAFKA_GROUP_INSTANCE_ID } : {}),
        autocommit: false,
      });
      const entry = { close: () => closeNow(c) };
      try {
        let stream = await openStream(c);
        if (stopped || this.closed) throw new Error('stopped');
        consumer = c;
        this.consumers.add(entry);
        // After a rebalance, read again from the committed offsets with a fresh stream (the old
        // one may still hand over messages fetched for the previous assignment).
        c.on('consumer:group:join', () => {
          if (consumer !== c || stopped) return;
          const old = stream;
          void openStream(c).then((s) => {
            stream = s;
            void old.close().catch(() => undefined);
          }, (err: unknown) => {
            this.logger?.error({ err: (err as Error).message, group: options.groupId }, 'kafka consumer could not resume after a rebalance; rebuilding it');
            void rebuild(c);
          });
        });
        c.on('error', (err: Error) => {
          if (consumer !== c || stopped) return;
          this.logger?.error({ err: err.message, group: options.groupId }, 'kafka consumer failed; rebuilding it');
          void rebuild(c);
        });
      } catch (err) {
        this.consumers.delete(entry);
        if (consumer === c) consumer = undefined;
        await closeNow(c).catch(() => undefined);
        throw err;
      }
    };

    const rebuild = async (c: Consumer) => {
      if (consumer !== c) return;
      consumer = undefined;
      epoch += 1;
      await closeNow(c).catch(() => undefined);
      if (!stopped && !this.closed) setTimeout(() => void keepStarting(), 2000);
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
      active: () => !stopped && !this.closed && consumer !== undefined && consumer.isActive(),
      stop: async () => {
        stopped = true;
        await Promise.all([...workers]); // the batches in hand see active() false and return
        const c = consumer;
        consumer = undefined;
        if (c) await closeNow(c).catch(() => undefined);
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
   * broker that answers: this does its own bounded wait rather than trust one metadata answer.
   */
  async ensureTopics(topics: string[], deadlineMs = 60_000): Promise<void> {
    const all = [...new Set(topics.flatMap((t) => [t, dlqOf(t)]))].map(this.topic);
    const admin = this.admin();
    try {
      await admin.listTopics(); // a broker out of reach fails here at once (prepare() then says 'degraded')
      await retrying('topic creation', this.logger, async () => {
        const existing = new Set(await admin.listTopics());
        const wanted = all.filter((t) => !existing.has(t));
        if (wanted.length === 0) return;
        await admin.createTopics(wanted.map((topic) => ({
          topic,
          // A DLQ has the partitions of its source (keys keep their partition) and its own, longer retention.
          partitions: this.config.KAFKA_TOPIC_PARTITIONS,
          retentionMs: topic.endsWith('.dlq') ? this.config.KAFKA_DLQ_RETENTION_MS : this.config.KAFKA_TOPIC_RETENTION_MS,
        })));
        this.logger?.info({ topics: wanted }, 'kafka topics created');
      }, deadlineMs);
      await retrying('topic leaders', this.logger, async () => {
        const missing = await admin.withoutLeaders(all);
        if (missing.length > 0) throw new Error(`no leader yet for ${missing.join(', ')}`);
      }, deadlineMs);
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  /** Answers at once from what the producer last saw; a down broker is re-tried in the background. */
  async healthy(): Promise<boolean> {
    if (this.connected) return true;
    if (!this.closed) {
      void this.getProducer().metadata({ topics: [] }).then(
        () => void (this.connected = !this.closed),
        () => undefined,
      );
    }
    return false;
  }

  /** Partitions and retention of existing topics (logical names), for the status command and tests. */
  async describeTopics(topics: string[]): Promise<{ topic: string; partitions: number; retentionMs: number }[]> {
    const admin = this.admin();
    try {
      return (await admin.describeTopics(topics.map(this.topic))).map((t) => ({ ...t, topic: this.logical(t.topic) }));
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  /** Messages of `topics` (logical) that `group` has not committed yet, per partition (lag metrics). */
  async lag(group: string, topics: string[]): Promise<{ topic: string; partition: number; lag: number }[]> {
    this.sharedAdmin ??= this.admin();
    const admin = this.sharedAdmin;
    const physical = topics.map(this.topic);
    const committed = await admin.committedOffsets(this.topic(group), physical);
    const out: { topic: string; partition: number; lag: number }[] = [];
    for (const topic of physical) {
      for (const { partition, low, high } of await admin.topicOffsets(topic)) {
        const done = committed.get(topic)?.get(partition) ?? -1n;
        const from = done >= 0n ? done : low;
        out.push({ topic: this.logical(topic), partition, lag: Math.max(0, Number(high - from)) });
      }
    }
    return out;
  }

  /** An admin client (physical names) for the status and dead-letter commands and tests; close() it. */
  admin(): KafkaAdmin {
    return new KafkaAdmin(this.options);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.close().catch(() => undefined)));
    this.consumers.clear();
    await this.sharedAdmin?.close().catch(() => undefined);
    if (this.producer) await this.producer.close().catch(() => undefined);
  }
}
