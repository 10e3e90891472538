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
import { hasBrokerError, isUnreachable } from './failures';
import { KafkaAdmin } from './kafka-admin';
import { retry, sleep } from '@crm/errors';

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
    // TLS with Node's defaults (system CAs, host name checked)
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

/** One subscribe() call: its options, its current consumer, the stream epoch and the batches in hand. */
interface Group {
  options: SubscribeOptions;
  /** Most messages a batch holds. */
  size: number;
  /** Partitions handled at the same time. */
  concurrency: number;
  /** How long a batch smaller than `size` waits for more (SubscribeOptions.lingerMs). */
  lingerMs: number;
  run: (messages: DeliveredMessage[], control: BatchControl) => Promise<void>;
  stopped: boolean;
  consumer: Consumer | undefined;
  /** Bumped for each new stream (start, rebalance): batches of an older one are given up, not committed. */
  epoch: number;
  workers: Set<Promise<void>>;
}

/** One stream's messages, queued per partition (`topic:partition`), and whether the stream is still the group's current one. */
interface StreamQueues {
  stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
  queues: Map<string, Message[]>;
  /** Partitions being worked on. */
  busy: Set<string>;
  /** Messages queued over all partitions; the stream pauses at `limit` and resumes below half. */
  queued: number;
  limit: number;
  current: () => boolean;
  control: BatchControl;
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

  constructor(
    private readonly config: PlatformConfig,
    clientId: string,
    private readonly logger?: Logger,
  ) {
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
      // Java's partitioner: toPositive(murmur2(key)) % partitions, so a key lands where the Java
      // client puts it (the client's own default takes murmur2 >>> 0, which puts some keys on other partitions).
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
   * One send at a time (one request in flight). The client's idempotent producer advances
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
      this.provisioned = retrying(
        'topic provisioning',
        this.logger,
        async () => {
          attempts += 1;
          try {
            await this.ensureTopics(topics);
          } catch (err) {
            if (attempts === 1) firstFailure(err);
            throw err;
          }
        },
        Infinity,
        () => this.closed,
      ).then(() => {
        this.provisionedDone = true;
        if (attempts > 1) this.logger?.info('kafka: reachable again; topics provisioned, consumers joining');
      });
      this.provisioned.catch(() => undefined);
      void failedOnce.then((err) => {
        if (isUnreachable(err))
          this.logger?.warn({ err: (err as Error).message }, 'kafka: broker unreachable; serving without events until it is back (writes wait in the outbox)');
      });
      this.unreachableAtStart = failedOnce.then((err) => isUnreachable(err));
    }
    const settled = Promise.race([
      this.provisioned.then(
        () => 'ready' as const,
        () => 'degraded' as const,
      ),
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
    const g: Group = {
      options,
      size: handleBatch ? (options.batchSize ?? 500) : 100,
      concurrency: handleBatch ? Math.max(1, options.partitionsConcurrently ?? 1) : 1,
      lingerMs: handleBatch ? (options.lingerMs ?? 0) : 0,
      run:
        handleBatch ??
        (async (messages: DeliveredMessage[]) => {
          for (const m of messages) await handle!(m);
        }),
      stopped: false,
      consumer: undefined,
      epoch: 0,
      workers: new Set(),
    };
    const started = (this.provisioned ?? Promise.resolve()).then(
      () => this.keepStarting(g),
      () => this.keepStarting(g),
    );
    if (!(this.provisioned && !this.provisionedDone && (await this.knownUnreachable()))) {
      await orAfter(started, 60_000, undefined);
    }
    return {
      active: () => !g.stopped && !this.closed && g.consumer !== undefined && g.consumer.isActive(),
      stop: async () => {
        g.stopped = true;
        await Promise.all([...g.workers]); // the batches in hand see active() false and return
        const c = g.consumer;
        g.consumer = undefined;
        if (c) await closeNow(c).catch(() => undefined);
      },
    };
  }

  /** Starts the group's consumer, retrying until it joins or the subscription stops. */
  private keepStarting(g: Group): Promise<void> {
    return retrying(
      `consumer ${g.options.groupId}`,
      this.logger,
      () => this.startOnce(g),
      Infinity,
      () => g.stopped || this.closed,
    ).catch((err: unknown) => {
      if (!g.stopped && !this.closed) this.logger?.error({ err, group: g.options.groupId }, 'kafka consumer could not start');
    });
  }

  /** One consumer for the group: joined, its stream open, rebuilt on a failure; closed again if any step fails. */
  private async startOnce(g: Group): Promise<void> {
    const c = this.newConsumer(g.options.groupId);
    const entry = { close: () => closeNow(c) };
    try {
      let stream = await this.openStream(g, c);
      if (g.stopped || this.closed) throw new Error('stopped');
      g.consumer = c;
      this.consumers.add(entry);
      // After a rebalance, read again from the committed offsets with a fresh stream (the old
      // one may still hand over messages fetched for the previous assignment).
      c.on('consumer:group:join', () => {
        if (g.consumer !== c || g.stopped) return;
        const old = stream;
        void this.openStream(g, c).then(
          (s) => {
            stream = s;
            void old.close().catch(() => undefined);
          },
          (err: unknown) => {
            this.logger?.error({ err: (err as Error).message, group: g.options.groupId }, 'kafka consumer could not resume after a rebalance; rebuilding it');
            void this.rebuild(g, c);
          },
        );
      });
      c.on('error', (err: Error) => {
        if (g.consumer !== c || g.stopped) return;
        this.logger?.error({ err: err.message, group: g.options.groupId }, 'kafka consumer failed; rebuilding it');
        void this.rebuild(g, c);
      });
    } catch (err) {
      this.consumers.delete(entry);
      if (g.consumer === c) g.consumer = undefined;
      await closeNow(c).catch(() => undefined);
      throw err;
    }
  }

  private newConsumer(groupId: string): Consumer {
    return new Consumer({
      ...this.options,
      groupId: this.topic(groupId),
      // A crashed member's partitions move after the session timeout (docs/consumer-takeover.md).
      sessionTimeout: this.config.KAFKA_SESSION_TIMEOUT_MS,
      rebalanceTimeout: 60_000,
      heartbeatInterval: this.config.KAFKA_HEARTBEAT_INTERVAL_MS,
      // Static membership: the replica's stable name (instance ids are per group; a process consumes a group once).
      ...(this.config.KAFKA_GROUP_INSTANCE_ID ? { groupInstanceId: this.config.KAFKA_GROUP_INSTANCE_ID } : {}),
      autocommit: false,
    });
  }

  /** Closes a failed consumer and starts a new one 2 s later (unless stopping). */
  private async rebuild(g: Group, c: Consumer): Promise<void> {
    if (g.consumer !== c) return;
    g.consumer = undefined;
    g.epoch += 1;
    await closeNow(c).catch(() => undefined);
    if (!g.stopped && !this.closed) setTimeout(() => void this.keepStarting(g), 2000);
  }

  /** A fresh stream from the committed offsets; a new epoch, so the batches of an older stream are given up. */
  private async openStream(g: Group, c: Consumer): Promise<MessagesStream<Buffer, Buffer, Buffer, Buffer>> {
    const stream = await c.consume({
      topics: g.options.topics.map(this.topic),
      mode: 'committed',
      fallbackMode: g.options.fromLatest ? 'latest' : 'earliest',
      autocommit: false,
      maxWaitTime: 500,
      highWaterMark: Math.max(g.size, 1024),
    });
    g.epoch += 1;
    this.pump(g, c, stream, g.epoch);
    return stream;
  }

  /** Reads one stream: messages queued per partition, each partition's queue worked in batches, in order. */
  private pump(g: Group, c: Consumer, stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>, mine: number): void {
    const current = () => !g.stopped && !this.closed && g.epoch === mine;
    const q: StreamQueues = { stream, queues: new Map(), busy: new Set(), queued: 0, limit: Math.max(g.size * 2, 1000), current, control: { active: current } };
    stream.on('data', (m: Message) => {
      if (!current()) return;
      const key = `${m.topic}:${m.partition}`;
      let queue = q.queues.get(key);
      if (!queue) q.queues.set(key, (queue = []));
      queue.push(m);
      q.queued += 1;
      if (q.queued >= q.limit) stream.pause();
      this.schedule(g, q);
    });
    stream.on('error', (err) => this.streamFailed(g, c, mine, err));
  }

  /** Starts work on partitions with queued messages, up to the group's concurrency, one worker per partition. */
  private schedule(g: Group, q: StreamQueues): void {
    for (const key of q.queues.keys()) {
      if (q.busy.size >= g.concurrency) return;
      if (q.busy.has(key) || q.queues.get(key)!.length === 0) continue;
      q.busy.add(key);
      const w = this.work(g, q, key).finally(() => {
        q.busy.delete(key);
        g.workers.delete(w);
        if (q.current()) this.schedule(g, q);
      });
      g.workers.add(w);
    }
  }

  /** Works one partition's queue in batches of at most `size`, committing after each, while the stream is current. */
  private async work(g: Group, q: StreamQueues, key: string): Promise<void> {
    const queue = q.queues.get(key)!;
    while (queue.length > 0 && q.current()) {
      if (g.lingerMs > 0 && queue.length < g.size) {
        await sleep(g.lingerMs); // what arrives meanwhile is queued here (the partition is busy) and joins the batch
        if (!q.current()) return;
      }
      const chunk = queue.splice(0, g.size);
      q.queued -= chunk.length;
      if (q.stream.isPaused() && q.queued < q.limit / 2) q.stream.resume();
      const handled = await this.handleUntilDone(g, chunk.map(this.deliver), q);
      if (!handled || !q.current()) return; // partitions may have moved: the next owner starts from the last commit
      try {
        await chunk[chunk.length - 1]!.commit();
      } catch (err) {
        this.logger?.warn({ err: (err as Error).message, group: g.options.groupId }, 'kafka: offset commit failed (the batch may come again)');
      }
    }
  }

  /** Like a consumer that did not commit: the same batch again after a throw, for as long as it is ours. False: given up. */
  private handleUntilDone(g: Group, batch: DeliveredMessage[], q: StreamQueues): Promise<boolean> {
    return retry(
      async (attempt) => {
        if (attempt > 1 && !q.current()) throw new NotCurrent();
        await g.run(batch, q.control);
        return true;
      },
      {
        ...BACKOFF,
        shouldRetry: (err) => !(err instanceof NotCurrent) && q.current(),
        onRetry: ({ error, attempt }) =>
          this.logger?.error({ err: error, group: g.options.groupId, topic: batch[0]!.topic, partition: batch[0]!.partition, attempt }, 'kafka: batch handler threw; redelivering'),
      },
    ).catch(() => false);
  }

  private deliver = (m: Message): DeliveredMessage => {
    const headers: Record<string, string> = {};
    for (const [k, v] of m.headers) if (v !== undefined) headers[k.toString()] = v.toString();
    return { topic: this.logical(m.topic), partition: m.partition, offset: String(m.offset), key: m.key?.toString() ?? null, value: m.value ?? null, headers };
  };

  /** A stream of epoch `mine` failed: an offset out of range is reset by the group's policy; anything else rebuilds the consumer. */
  private streamFailed(g: Group, c: Consumer, mine: number, err: Error): void {
    if (g.epoch !== mine || g.stopped || this.closed) return;
    if (hasBrokerError(err, 'OFFSET_OUT_OF_RANGE')) {
      // The committed offset is gone (retention deleted it) or past the end: rather than fail
      // the same fetch for ever, move it by the group's offset-reset policy, then read on.
      g.epoch += 1;
      void this.resetOutOfRange(g.options, c)
        .catch((e: unknown) => this.logger?.error({ err: (e as Error).message, group: g.options.groupId }, 'kafka: offset reset failed; retrying'))
        .finally(() => {
          if (g.consumer === c) void this.rebuild(g, c);
        });
      return;
    }
    this.logger?.error({ err: err.message, group: g.options.groupId }, 'kafka consumer stream failed; rebuilding the consumer');
    void this.rebuild(g, c);
  }

  /** Commits, for each partition whose committed offset is out of range, the start (earliest) or end (latest) of what is kept. */
  private async resetOutOfRange(options: SubscribeOptions, c: Consumer): Promise<void> {
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
      await retrying(
        'topic creation',
        this.logger,
        async () => {
          const existing = new Set(await admin.listTopics());
          const wanted = all.filter((t) => !existing.has(t));
          if (wanted.length === 0) return;
          await admin.createTopics(
            wanted.map((topic) => ({
              topic,
              // A DLQ has the partitions of its source (keys keep their partition) and its own, longer retention.
              partitions: this.config.KAFKA_TOPIC_PARTITIONS,
              retentionMs: topic.endsWith('.dlq') ? this.config.KAFKA_DLQ_RETENTION_MS : this.config.KAFKA_TOPIC_RETENTION_MS,
            })),
          );
          this.logger?.info({ topics: wanted }, 'kafka topics created');
        },
        deadlineMs,
      );
      await retrying(
        'topic leaders',
        this.logger,
        async () => {
          const missing = await admin.withoutLeaders(all);
          if (missing.length > 0) throw new Error(`no leader yet for ${missing.join(', ')}`);
        },
        deadlineMs,
      );
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  /** Answers at once from what the producer last saw; a down broker is re-tried in the background. */
  async healthy(): Promise<boolean> {
    if (this.connected) return true;
    if (!this.closed) {
      void this.getProducer()
        .metadata({ topics: [] })
        .then(
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
