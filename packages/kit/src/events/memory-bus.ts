/**
 * The embedded mode's bus: one process, same envelope bytes, one ordered log per topic, each
 * consumer group with its own offset and strictly sequential delivery (like one partition).
 * Not durable across a crash of the process: events already handed to it but not yet handled
 * are lost then (the Kafka path has no such gap).
 */
import type { Logger } from '../logger';
import type { BusMessage, DeliveredMessage, EventBus, SubscribeOptions, Subscription } from './bus';

interface Log {
  base: number; // offset of messages[0]
  messages: DeliveredMessage[];
  waiters: Set<() => void>;
}

const KEEP = 10_000;

export class MemoryBus implements EventBus {
  readonly kind = 'memory' as const;
  private readonly logs = new Map<string, Log>();
  /** Next offset per consumer group and topic (for lag). */
  private readonly positions = new Map<string, Map<string, number>>();
  private closed = false;

  constructor(private readonly logger?: Logger) {}

  private log(topic: string): Log {
    let log = this.logs.get(topic);
    if (!log) {
      log = { base: 0, messages: [], waiters: new Set() };
      this.logs.set(topic, log);
    }
    return log;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
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
      if (log.messages.length > KEEP * 2) {
        log.messages.splice(0, KEEP);
        log.base += KEEP;
      }
      for (const wake of log.waiters) wake();
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    let running = true;
    const stopWaiters = new Set<() => void>();
    let positions = this.positions.get(options.groupId);
    if (!positions) this.positions.set(options.groupId, (positions = new Map()));
    const at = positions;
    const loops = options.topics.map(async (topic) => {
      const log = this.log(topic);
      let next = options.fromLatest ? log.base + log.messages.length : log.base;
      at.set(topic, next);
      while (running && !this.closed) {
        const index = next - log.base;
        const message = log.messages[Math.max(index, 0)];
        if (index < 0) next = log.base; // trimmed past us
        if (!message || index < 0) {
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
          await options.handle(message);
          next += 1;
          at.set(topic, next);
        } catch (err) {
          // Like Kafka without a commit: the same message comes again.
          this.logger?.error({ err, topic, group: options.groupId }, 'handler threw; redelivering');
          await new Promise((r) => setTimeout(r, 500));
        }
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
