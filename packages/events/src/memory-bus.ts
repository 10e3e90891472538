/**
 * The embedded mode's bus: one process, same envelope bytes, one ordered log per topic, each
 * consumer group with its own offset and strictly sequential delivery (like one partition).
 * Not durable across a crash of the process: events already handed to it but not yet handled
 * are lost then (the Kafka path has no such gap).
 *
 * Memory is bounded without skipping anyone: a log drops only what every subscriber has handled,
 * and once a lagging subscriber leaves more than `maxBacklog` messages unhandled, publish fails
 * loudly (the outbox relay then keeps its rows and retries: backpressure, nothing lost).
 */
import type { Logger } from '@crm/telemetry';
import type { BusMessage, DeliveredMessage, EventBus, SubscribeOptions, Subscription } from './bus';
import { onlyOwnReplays } from './bus';
import { sleep } from '@crm/errors';

interface Log {
  base: number; // offset of messages[0]
  messages: DeliveredMessage[];
  waiters: Set<() => void>;
  /** Next offset of each active subscriber (group) of this topic. */
  readers: Map<object, { group: string; next: number }>;
}

/** Handled messages kept for groups that subscribe later. */
const KEEP = 10_000;

export class BusBackpressureError extends Error {
  override readonly name = 'BusBackpressureError';
}

export class MemoryBus implements EventBus {
  readonly kind = 'memory' as const;
  private readonly logs = new Map<string, Log>();
  /** Next offset per consumer group and topic (for lag). */
  private readonly positions = new Map<string, Map<string, number>>();
  private closed = false;

  constructor(
    private readonly logger?: Logger,
    private readonly maxBacklog = 100_000,
  ) {}

  private log(topic: string): Log {
    let log = this.logs.get(topic);
    if (!log) {
      log = { base: 0, messages: [], waiters: new Set(), readers: new Map() };
      this.logs.set(topic, log);
    }
    return log;
  }

  /** Drops handled messages beyond KEEP; never one a subscriber has not handled yet. */
  private trim(log: Log): void {
    let slowest = log.base + log.messages.length;
    for (const r of log.readers.values()) slowest = Math.min(slowest, r.next);
    const drop = Math.min(slowest - log.base, log.messages.length - KEEP);
    if (drop >= KEEP) {
      log.messages.splice(0, drop);
      log.base += drop;
    }
  }

  async publish(messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    for (const topic of new Set(messages.map((m) => m.topic))) {
      const log = this.log(topic);
      const end = log.base + log.messages.length;
      for (const r of log.readers.values()) {
        if (end - r.next >= this.maxBacklog) {
          const msg = `in-process bus: consumer group ${r.group} is ${end - r.next} messages behind on ${topic}; publishing waits for it`;
          this.logger?.error({ topic, group: r.group, behind: end - r.next }, msg);
          throw new BusBackpressureError(msg);
        }
      }
    }
    for (const m of messages) {
      const log = this.log(m.topic);
      log.messages.push({
        topic: m.topic,
        partition: 0,
        offset: String(log.base + log.messages.length),
        key: m.key,
        value: Buffer.from(m.value),
        headers: m.headers ?? {},
      });
      this.trim(log);
      for (const wake of log.waiters) wake();
    }
  }

  async subscribe(given: SubscribeOptions): Promise<Subscription> {
    const options = onlyOwnReplays(given); // a replayed dead letter reaches only the group that failed it
    const { handle, handleBatch } = options;
    if (!handle && !handleBatch) throw new Error('subscribe needs handle or handleBatch');
    let running = true;
    const stopWaiters = new Set<() => void>();
    const batchSize = handleBatch ? (options.batchSize ?? 500) : 1;
    const lingerMs = handleBatch ? (options.lingerMs ?? 0) : 0;
    let positions = this.positions.get(options.groupId);
    if (!positions) this.positions.set(options.groupId, (positions = new Map()));
    const at = positions;
    const control = { active: () => running && !this.closed };
    const loops = options.topics.map(async (topic) => {
      const log = this.log(topic);
      // A group that consumed here before resumes after what it handled (like a committed offset).
      const committed = at.get(topic);
      const start = committed !== undefined ? Math.max(committed, log.base) : options.fromLatest ? log.base + log.messages.length : log.base;
      const reader = { group: options.groupId, next: start };
      const token = {};
      log.readers.set(token, reader);
      at.set(topic, reader.next);
      let lingered = false;
      try {
        while (running && !this.closed) {
          const index = reader.next - log.base;
          const batch = log.messages.slice(index, index + batchSize);
          if (batch.length > 0 && batch.length < batchSize && lingerMs > 0 && !lingered) {
            lingered = true; // once per batch: then it is read again with what came meanwhile
            await sleep(lingerMs);
            continue;
          }
          lingered = false;
          if (batch.length === 0) {
            await new Promise<void>((resolve) => {
              const wake = () => {
                log.waiters.delete(wake);
                resolve();
              };
              log.waiters.add(wake);
              stopWaiters.add(wake);
            });
            continue;
          }
          try {
            if (handleBatch) await handleBatch(batch, control);
            else await handle!(batch[0]!);
            reader.next += batch.length;
            at.set(topic, reader.next);
          } catch (err) {
            // Like Kafka without a commit: the same messages come again.
            if (running) this.logger?.error({ err, topic, group: options.groupId }, 'handler threw; redelivering');
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      } finally {
        log.readers.delete(token);
      }
    });
    return {
      active: () => running && !this.closed,
      stop: async () => {
        running = false;
        for (const wake of stopWaiters) wake();
        await Promise.all(loops);
      },
    };
  }

  async ensureTopics(topics: string[]): Promise<void> {
    for (const t of topics) this.log(t);
  }

  async prepare(topics: string[]): Promise<'ready'> {
    await this.ensureTopics(topics);
    return 'ready';
  }

  async healthy(): Promise<boolean> {
    return !this.closed;
  }

  /** Messages of `topics` a group has not handled yet (one partition per topic). */
  lag(groupId: string, topics: string[]): { topic: string; partition: number; lag: number }[] {
    const at = this.positions.get(groupId);
    return topics.map((topic) => {
      const log = this.log(topic);
      const end = log.base + log.messages.length;
      return { topic, partition: 0, lag: Math.max(0, end - (at?.get(topic) ?? log.base)) };
    });
  }

  /** Messages currently kept on a topic (tests, status). */
  peek(topic: string): DeliveredMessage[] {
    return [...(this.logs.get(topic)?.messages ?? [])];
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const log of this.logs.values()) for (const wake of log.waiters) wake();
  }
}
