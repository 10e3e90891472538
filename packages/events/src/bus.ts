/**
 * The port every subgraph and the gateway use for events. Adapters: Kafka (@platformatic/kafka), the
 * event log kept in Postgres (no Kafka, a Postgres server: postgres-bus.ts) and an in-process bus
 * (neither). All carry the same envelope bytes, keyed by aggregate id.
 */
export interface BusMessage {
  topic: string;
  key: string;
  value: string;
  headers?: Record<string, string>;
}

export interface DeliveredMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

export interface SubscribeOptions {
  /** Consumer group; every group gets every message once (per partition order). */
  groupId: string;
  topics: string[];
  /**
   * The group's offset-reset policy: where it starts when it has no committed offset (a new group),
   * and where a committed offset that is out of range (its records deleted by retention) moves to.
   * false (earliest, the default): from the oldest record still kept — nothing kept is skipped;
   * right for every consumer whose effects are idempotent (inbox, versioned copies). true (latest):
   * only what is published from now on — for live feeds that must not replay history. Every bus
   * applies it the same way (docs/events-and-sagas.md lists each group's policy).
   */
  fromLatest?: boolean;
  /** Called for each message in partition order; a throw is retried by the bus's caller, not here. */
  handle?: (message: DeliveredMessage) => Promise<void>;
  /**
   * Instead of `handle`: called with consecutive messages of one partition (at most `batchSize`),
   * in order. Returning commits past the last one; a throw redelivers the whole batch.
   */
  handleBatch?: (messages: DeliveredMessage[], control: BatchControl) => Promise<void>;
  batchSize?: number;
  /**
   * With handleBatch: a batch of fewer than `batchSize` messages waits this long before it is
   * handled, and what arrives on its partition meanwhile joins it (one transaction, one commit).
   * For consumers whose effects nobody waits for (the audit log): their work moves out of the
   * moment an event is published, when the reads of live subscriptions and the consumers users do
   * wait for compete for the CPU, and a burst costs one batch instead of one per event. A backlog
   * (a full batch) never waits. 0 (default): handled at once.
   */
  lingerMs?: number;
  /** With handleBatch: how many partitions' batches may be handled at the same time (Kafka). */
  partitionsConcurrently?: number;
}

/**
 * What a batch handler may ask while it works. (No heartbeat: every bus keeps its group membership
 * alive by itself while a handler works or waits — the Kafka client on its own timer, the event
 * log's member loop — so a long retry never loses the partition for want of one.)
 */
export interface BatchControl {
  /** False once the subscription is stopping or the partition was taken away: give up the batch. */
  active(): boolean;
}

export interface Subscription {
  /** True while the consumer is joined and receiving (false while the broker is away). */
  active(): boolean;
  stop(): Promise<void>;
}

export interface EventBus {
  readonly kind: 'kafka' | 'postgres' | 'memory';
  /** Resolves once the messages are acknowledged by the broker (acks=all for Kafka). */
  publish(messages: BusMessage[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Creates topics (and their .dlq) that do not exist yet; fails if the broker does not answer in time. */
  ensureTopics(topics: string[]): Promise<void>;
  /**
   * What services call at start: provisions the topics, in the background if the broker is away
   * ('degraded': reads and writes go on, events wait in the outbox, consumers join once it is back).
   */
  prepare(topics: string[]): Promise<'ready' | 'degraded'>;
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A dead letter re-driven by `kafka:dlq replay` goes back to its source topic with this header
 * naming the one consumer group that failed it (and `x-replays`, how many times it was replayed).
 * Every other group drops it unseen: a replay is never a second delivery to a group that handled
 * the event. Each bus adapter applies `onlyOwnReplays` to the options it is given.
 */
export const REPLAY_FOR_HEADER = 'x-replay-for';
export const REPLAYS_HEADER = 'x-replays';

/** Whether `message` is a replayed dead letter meant for another group than `groupId`. */
export const replayedForOtherGroup = (message: DeliveredMessage, groupId: string): boolean => {
  const target = message.headers[REPLAY_FOR_HEADER];
  return target !== undefined && target !== groupId;
};

/** `options` whose handler never sees a replay meant for another group (those are skipped and committed past). */
export function onlyOwnReplays(options: SubscribeOptions): SubscribeOptions {
  const { handle, handleBatch, groupId } = options;
  return {
    ...options,
    ...(handle ? { handle: async (m: DeliveredMessage) => (replayedForOtherGroup(m, groupId) ? undefined : handle(m)) } : {}),
    ...(handleBatch
      ? {
          handleBatch: async (messages: DeliveredMessage[], control: BatchControl) => {
            const mine = messages.some((m) => replayedForOtherGroup(m, groupId)) ? messages.filter((m) => !replayedForOtherGroup(m, groupId)) : messages;
            if (mine.length > 0) await handleBatch(mine, control);
          },
        }
      : {}),
  };
}
