/**
 * The embedded mode's bus across processes (STACK_PROCESSES=multi without Kafka): each process
 * keeps the in-process MemoryBus (its own consumer groups, offsets, sequential delivery) and the
 * launcher's process tree carries every published message to every other process over the
 * IPC channels node already opens for child processes and cluster workers. A message arriving on
 * one link is appended locally and passed on to the other links, so a tree of processes (launcher →
 * services → gateway workers) floods it once to everyone. Same guarantees as MemoryBus: ordered
 * per publisher, not durable across a crash. With Kafka configured no process uses this.
 */
import type { Logger } from '@crm/telemetry';
import type { BusMessage, EventBus, SubscribeOptions, Subscription } from './bus';
import { MemoryBus } from './memory-bus';

/** A process's IPC channel: `process` in a child, a ChildProcess or a cluster Worker in its parent. */
export interface IpcLink {
  send(message: unknown, callback?: (error: Error | null) => void): unknown;
  /** false once the channel has closed (ChildProcess, process, Worker all have it). */
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

const TAG = 'crm-bus';
interface Envelope {
  [TAG]: BusMessage[];
}
const isEnvelope = (m: unknown): m is Envelope => typeof m === 'object' && m !== null && Array.isArray((m as Envelope)[TAG]);

export class IpcBus implements EventBus {
  readonly kind = 'memory' as const;
  private readonly local: MemoryBus;
  private readonly links = new Set<IpcLink>();

  constructor(logger?: Logger) {
    this.local = new MemoryBus(logger);
  }

  /** Joins a channel: messages from it are delivered here and passed on to the other links. */
  link(link: IpcLink): void {
    this.links.add(link);
    link.on('message', (m) => {
      if (!isEnvelope(m)) return;
      void this.local.publish(m[TAG]).catch(() => undefined);
      this.forward(m, link);
    });
  }

  /** Leaves a channel (its process has exited). */
  unlink(link: IpcLink): void {
    this.links.delete(link);
  }

  private forward(m: Envelope, except?: IpcLink) {
    for (const l of this.links) {
      if (l === except || l.connected === false) continue;
      try {
        // with a callback, a channel that closes meanwhile reports ERR_IPC_CHANNEL_CLOSED here instead of as an unhandled 'error'
        l.send(m, () => undefined);
      } catch {
        // a process that has exited: the launcher stops the rest
      }
    }
  }

  async publish(messages: BusMessage[]): Promise<void> {
    await this.local.publish(messages);
    this.forward({ [TAG]: messages });
  }

  subscribe(options: SubscribeOptions): Promise<Subscription> {
    return this.local.subscribe(options);
  }

  ensureTopics(topics: string[]): Promise<void> {
    return this.local.ensureTopics(topics);
  }

  prepare(topics: string[]): Promise<'ready' | 'degraded'> {
    return this.local.prepare(topics);
  }

  healthy(): Promise<boolean> {
    return this.local.healthy();
  }

  close(): Promise<void> {
    this.links.clear();
    return this.local.close();
  }
}
