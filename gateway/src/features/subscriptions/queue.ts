/**
 * Backpressure: each subscription gets a bounded queue between the hub and graphql-ws, which
 * sends one message at a time and waits for the socket to take it. The hub never waits for a
 * client: it pushes, and when a client's queue is full (or its socket has too many bytes
 * buffered) that client is closed with 4429 'Subscriber too slow' and its queue dropped, so a slow
 * client neither stalls the others nor grows memory without bound.
 */
import type { ExecutionResult } from 'graphql';

export interface QueueOptions {
  /** Checked before every delivery: false ends the subscription (e.g. the subscriber's token was revoked). */
  admit?: () => boolean;
  limit: number;
  maxBufferedBytes: number;
  /** Bytes buffered on the socket (ws bufferedAmount). */
  buffered(): number;
  /** Called once when the client is too slow; closes its socket. */
  onOverflow(reason: 'queue' | 'buffer'): void;
  /** Called once when the iterator ends (client completed, socket closed, or overflow). */
  onEnd(): void;
}

export class LiveQueue implements AsyncIterableIterator<ExecutionResult> {
  private readonly items: ExecutionResult[] = [];
  private waiting: ((r: IteratorResult<ExecutionResult>) => void) | undefined;
  private done = false;

  constructor(private readonly options: QueueOptions) {}

  get size(): number {
    return this.items.length;
  }

  get closed(): boolean {
    return this.done;
  }

  /** Never blocks. Returns false when the client was dropped as too slow. */
  push(result: ExecutionResult): boolean {
    if (this.done) return false;
    if (this.options.admit && !this.options.admit()) {
      this.end();
      return false;
    }
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: result, done: false });
      return true;
    }
    const overflow = this.items.length >= this.options.limit ? 'queue' : this.options.buffered() > this.options.maxBufferedBytes ? 'buffer' : undefined;
    if (overflow) {
      this.end();
      this.options.onOverflow(overflow);
      return false;
    }
    this.items.push(result);
    return true;
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const item = this.items.shift();
    if (item) return Promise.resolve({ value: item, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err?: unknown): Promise<IteratorResult<ExecutionResult>> {
    this.end();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the iteration (graphql-ws then completes the operation), dropping what is pending. */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.items.length = 0;
    const resolve = this.waiting;
    this.waiting = undefined;
    resolve?.({ value: undefined, done: true });
    this.options.onEnd();
  }
}
