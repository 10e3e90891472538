/**
 * The fan-out hub: one bus consumer per gateway replica (its own consumer group, from the latest
 * offset), fanned out in memory to every matching subscriber.
 *
 * For each event: the live fields it fires (./topics) → the subscriber groups of each field →
 * the audience filter per group (cheap, before any query) → one resolution per group (identical
 * document + variables + identity share it, and its JSON is built once) → pushed to each member's
 * bounded queue (./queue), which writes it to the member's socket.
 * Each topic is a lane: its events are handled one at a time, in order, while the lanes of different
 * topics run concurrently (a slow approval resolution does not hold back a notification). The
 * resolutions of one event run concurrently (SUBSCRIPTION_RESOLVE_CONCURRENCY), each bounded by
 * SUBSCRIPTION_RESOLVE_TIMEOUT_MS: a resolution that does not answer in time is skipped (logged,
 * counted) so one stuck subgraph cannot stall the feed. A lane holds at most `maxPendingPerTopic`
 * events; beyond that the bus consumer waits for it. The hub never waits for a client.
 */
import { randomUUID } from 'node:crypto';
import { misrouted, parseEnvelope, subscriptionDelivered, traceConsume, traceDelivery, type DeliveredMessage, type EventBus, type Subscription } from '@crm/events';
import { noteCorrelation, type Logger } from '@crm/telemetry';
import { type Identity } from '@crm/runtime';
import type { ExecutionResult } from 'graphql';
import { entityIdOf, fieldsFor, liveTopics, mayReceive, type LiveField } from './topics';
import type { LiveOperation } from './operation';
import { LivePayload, type LiveQueue } from './queue';

export type Resolver = (op: LiveOperation, identity: Identity, entityId: string) => Promise<ExecutionResult | null>;

interface Group {
  op: LiveOperation;
  identity: Identity;
  members: Set<LiveQueue>;
}

export interface HubStats {
  consumer: boolean;
  subscriptions: number;
  groups: number;
  events: number;
  deliveries: number;
  dropped: number;
  /** Resolutions skipped because they did not answer within the timeout. */
  timedOut: number;
  /** Events refused as forged or misrouted (wrong topic for their type, or not from that topic's producer). */
  rejected: number;
}

export interface HubOptions {
  bus: EventBus;
  resolve: Resolver;
  logger: Logger;
  fields: readonly LiveField[];
  /** Resolutions of one event running at the same time. */
  concurrency: number;
  /** A resolution not answered within this time is skipped. */
  resolveTimeoutMs: number;
  /** Distinct subscriptions (groups) of one user resolved per event; the rest are skipped (counted as dropped). */
  perUserPerEvent?: number;
  /** Events one topic's lane may hold before the consumer waits for it. */
  maxPendingPerTopic?: number;
}

interface Waker {
  identity: Identity;
  wake: () => void;
}

interface Lane {
  tail: Promise<void>;
  pending: number;
}

class ResolveTimeout extends Error {}

export class LiveHub {
  private readonly groups = new Map<string, Map<string, Group>>(); // field → shareKey → group
  /** Resumed subscriptions (./resume.ts): an event they may receive only wakes them; they read their own order. */
  private readonly wakers = new Map<string, Set<Waker>>(); // field → wakers
  private subscription: Subscription | undefined;
  private readonly stats = { events: 0, deliveries: 0, dropped: 0, timedOut: 0, rejected: 0 };
  private readonly lanes = new Map<string, Lane>();
  private readonly logger: Logger;
  private readonly perUserPerEvent: number;
  private readonly maxPendingPerTopic: number;

  constructor(private readonly options: HubOptions) {
    this.logger = options.logger;
    this.perUserPerEvent = options.perUserPerEvent ?? Number.POSITIVE_INFINITY;
    this.maxPendingPerTopic = options.maxPendingPerTopic ?? 256;
  }

  async start(): Promise<void> {
    this.subscription = await this.options.bus.subscribe({
      groupId: `gateway-live-${randomUUID()}`,
      topics: liveTopics(this.options.fields),
      fromLatest: true,
      handle: (message) => this.enqueue(message),
    });
  }

  async stop(): Promise<void> {
    const sub = this.subscription;
    this.subscription = undefined;
    await sub?.stop();
    await Promise.all([...this.lanes.values()].map((lane) => lane.tail));
  }

  add(op: LiveOperation, identity: Identity, queue: LiveQueue): () => void {
    let byKey = this.groups.get(op.field.field);
    if (!byKey) this.groups.set(op.field.field, (byKey = new Map()));
    let group = byKey.get(op.shareKey);
    if (!group) byKey.set(op.shareKey, (group = { op, identity, members: new Set() }));
    group.members.add(queue);
    const g = group;
    return () => {
      g.members.delete(queue);
      if (g.members.size === 0 && byKey.get(op.shareKey) === g) byKey.delete(op.shareKey);
    };
  }

  /**
   * A resumed subscription: `wake` is called (synchronously, never awaited) for every event of
   * `field` that `identity` may receive; the subscription then reads what it has not delivered yet.
   */
  addWaker(field: LiveField, identity: Identity, wake: () => void): () => void {
    let set = this.wakers.get(field.field);
    if (!set) this.wakers.set(field.field, (set = new Set()));
    const waker: Waker = { identity, wake };
    set.add(waker);
    const s = set;
    return () => {
      s.delete(waker);
    };
  }

  /** Counts a resumed subscription's delivery (stats and metrics, like the fan-out's; no event-to-delivery latency: a backfill is not an event). */
  counted(field: string, ok: boolean): void {
    if (ok) this.stats.deliveries += 1;
    else this.stats.dropped += 1;
    subscriptionDelivered(field, '', ok);
  }

  /** Whether events are flowing in (false while the broker is away). */
  consuming(): boolean {
    return this.subscription?.active() ?? false;
  }

  snapshot(): HubStats {
    let subscriptions = 0;
    let groups = 0;
    for (const byKey of this.groups.values()) {
      groups += byKey.size;
      for (const g of byKey.values()) subscriptions += g.members.size;
    }
    for (const set of this.wakers.values()) subscriptions += set.size;
    return { consumer: this.consuming(), subscriptions, groups, ...this.stats };
  }

  /** Queues the message on its topic's lane; waits only while that lane is full. */
  private async enqueue(message: DeliveredMessage): Promise<void> {
    let lane = this.lanes.get(message.topic);
    if (!lane) this.lanes.set(message.topic, (lane = { tail: Promise.resolve(), pending: 0 }));
    const current = lane;
    current.pending += 1;
    current.tail = current.tail
      .then(() => traceConsume('gateway-live', message, () => this.handle(message)))
      .catch((err: unknown) => this.logger.error({ err, topic: message.topic }, 'live: handling an event failed'))
      .finally(() => {
        current.pending -= 1;
      });
    if (current.pending >= this.maxPendingPerTopic) await current.tail;
  }

  /** Never throws: a bad or unresolvable event must not block the partition. */
  private async handle(message: DeliveredMessage): Promise<void> {
    let event;
    try {
      event = parseEnvelope(message.value);
    } catch {
      return; // the domain consumers dead-letter bad messages; a live feed just skips them
    }
    // The same envelope check as the domain consumers (kit catalogue): an event whose type belongs
    // to another topic, or whose source is not that topic's producer, is forged or misrouted.
    const wrong = misrouted(event, message.topic);
    if (wrong) {
      this.stats.rejected += 1;
      this.logger.warn({ topic: message.topic, eventId: event.id, type: event.type, source: event.source, why: wrong }, 'live: forged or misrouted event skipped');
      return;
    }
    const fields = fieldsFor(message.topic, event.type, this.options.fields);
    if (fields.length === 0) return;
    noteCorrelation(event.correlationId);
    this.stats.events += 1;
    const work: (() => Promise<void>)[] = [];
    const perUser = new Map<string, number>();
    for (const field of fields) {
      for (const waker of this.wakers.get(field.field) ?? []) {
        if (mayReceive(field, event.data, waker.identity)) waker.wake();
      }
      const entityId = entityIdOf(field, event.data);
      const byKey = this.groups.get(field.field);
      if (!entityId || !byKey) continue;
      for (const group of byKey.values()) {
        if (group.members.size === 0 || !mayReceive(field, event.data, group.identity)) continue;
        const n = (perUser.get(group.identity.userId) ?? 0) + 1;
        perUser.set(group.identity.userId, n);
        if (n > this.perUserPerEvent) {
          this.stats.dropped += group.members.size;
          if (n === this.perUserPerEvent + 1)
            this.logger.warn({ userId: group.identity.userId, eventId: event.id }, 'live: too many distinct subscriptions of one user for one event; the rest skipped');
          continue;
        }
        work.push(() => this.deliver(group, entityId, event));
      }
    }
    await runLimited(work, this.options.concurrency);
  }

  private deliver(group: Group, entityId: string, event: { id: string; occurredAt: string }): Promise<void> {
    return traceDelivery(group.op.field.field, group.members.size, () => this.resolveAndPush(group, entityId, event.id, event.occurredAt));
  }

  private async resolveAndPush(group: Group, entityId: string, eventId: string, occurredAt: string): Promise<void> {
    let result: ExecutionResult | null;
    try {
      result = await withTimeout(this.options.resolve(group.op, group.identity, entityId), this.options.resolveTimeoutMs);
    } catch (err) {
      if (err instanceof ResolveTimeout) {
        this.stats.timedOut += 1;
        this.logger.warn({ eventId, field: group.op.field.field, timeoutMs: this.options.resolveTimeoutMs }, 'live: resolving an event timed out; skipped');
      } else {
        this.logger.error({ err, eventId, field: group.op.field.field }, 'live: resolving an event failed');
      }
      return;
    }
    if (!result) return;
    const payload = new LivePayload(result); // serialized once for the whole group
    for (const queue of [...group.members]) {
      const ok = queue.push(payload);
      if (ok) this.stats.deliveries += 1;
      else this.stats.dropped += 1;
      subscriptionDelivered(group.op.field.field, occurredAt, ok);
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResolveTimeout()), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++]!;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
