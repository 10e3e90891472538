/**
 * Backpressure: each subscription gets a bounded queue between the hub and its socket, which
 * takes one message at a time. The hub never waits for a client: it pushes, and when a client's
 * queue is full (or its socket has too many bytes buffered) that client is closed with 4429
 * 'Subscriber too slow' and its queue dropped, so a slow client neither stalls the others nor
 * grows memory without bound.
 *
 * Two ways out of the queue:
 *   - `send` given (the gateway): each event is written straight to the socket as a graphql-ws
 *     `next` frame built from the payload's JSON, which the hub serializes once per resolution
 *     group (LivePayload), not once per subscriber; the next queued event is written when the
 *     socket took the previous one. The iterator (what graphql-ws consumes) yields nothing and
 *     ends when the queue ends, so graphql-ws still sends `complete` after the last event.
 *   - no `send` (tests): the iterator yields each event's ExecutionResult.
 */
import type { ExecutionResult } from 'graphql';

/** One resolution's result, shared by every member of its group: serialized at most once. */
export class LivePayload {
  private text: string | undefined;

  constructor(readonly result: ExecutionResult) {}

  /** The result as JSON (GraphQLErrors by their toJSON, as graphql-ws would serialize them). */
  get json(): string {
    return (this.text ??= JSON.stringify(this.result));
  }
}

export interface QueueOptions {
  /** Checked before every delivery: false ends the subscription (e.g. the subscriber's token was revoked). */
  admit?: () => boolean;
  limit: number;
  maxBufferedBytes: number;
  /** Bytes buffered on the socket (ws bufferedAmount). */
  buffered(): number;
  /** Writes one payload's JSON to the client; `done` once the socket took it (or failed). */
  send?: (json: string, done: (err?: Error) => void) => void;
  /** Called once when the client is too slow; closes its socket. */
  onOverflow(reason: 'queue' | 'buffer'): void;
  /** Called once when the iterator ends (client completed, socket closed, or overflow). */
  onEnd(): void;
}

export class LiveQueue implements AsyncIterableIterator<ExecutionResult> {
  private readonly items: LivePayload[] = [];
  private waiting: ((r: IteratorResult<ExecutionResult>) => void) | undefined;
  private done = false;
  /** `send` mode: a write the socket has not taken yet. */
  private writing = false;
  /** Waiting for `idle()`. */
  private idlers: (() => void)[] = [];

  constructor(private readonly options: QueueOptions) {}

  get size(): number {
    return this.items.length;
  }

  get closed(): boolean {
    return this.done;
  }

  /** Never blocks. Returns false when the client was dropped as too slow. */
  push(payload: LivePayload): boolean {
    if (this.done) return false;
    if (this.options.admit && !this.options.admit()) {
      this.end();
      return false;
    }
    if (this.options.send ? !this.writing : this.waiting) {
      this.handOver(payload);
      return true;
    }
    const overflow = this.items.length >= this.options.limit ? 'queue' : this.options.buffered() > this.options.maxBufferedBytes ? 'buffer' : undefined;
    if (overflow) {
      this.end();
      this.options.onOverflow(overflow);
      return false;
    }
    this.items.push(payload);
    return true;
  }

  private handOver(payload: LivePayload): void {
    const send = this.options.send;
    if (!send) {
      const resolve = this.waiting!;
      this.waiting = undefined;
      resolve({ value: payload.result, done: false });
      return;
    }
    this.writing = true;
    send(payload.json, (err) => {
      this.writing = false;
      if (err) {
        this.end();
        return;
      }
      const next = this.items.shift();
      if (next && !this.done) this.handOver(next);
      else this.settle();
    });
  }

  /**
   * Resolves once nothing is pending (every pushed event taken by the socket, or by the iterator's
   * reader) or the queue ended: a producer that must not overflow the queue (a resumed feed's
   * backfill) pushes a page, then waits for this.
   */
  idle(): Promise<void> {
    if (this.done || (this.items.length === 0 && !this.writing)) return Promise.resolve();
    return new Promise((resolve) => this.idlers.push(resolve));
  }

  private settle(): void {
    if (!this.done && (this.items.length > 0 || this.writing)) return;
    for (const resolve of this.idlers.splice(0)) resolve();
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.options.send) {
      const item = this.items.shift();
      if (item) {
        this.settle();
        return Promise.resolve({ value: item.result, done: false });
      }
    }
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
    this.settle();
    this.options.onEnd();
  }
}
