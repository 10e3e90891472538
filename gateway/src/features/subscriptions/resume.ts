/**
 * A resumed live feed: `notificationAdded(after: <id of the last one received>)`.
 *
 * The owning subgraph keeps each subscriber's entities in an order (analytics: `notifications.seq`, a
 * database sequence drawn under the recipient's transaction lock, so per recipient it is commit order)
 * and answers a gateway-internal query, "my entities after this one, oldest first" (the field's
 * `resume.positionsQuery`, @inaccessible: not in the API schema). A resumed subscription keeps a cursor
 * (the last position it delivered) and is the only producer of its queue:
 *
 *   subscribe → registered as a waker with the hub FIRST → catch-up
 *   catch-up  = read the positions after the cursor (pages of PAGE), resolve each entity through the
 *               federated plan with the subscriber's identity (as a live event is), push it, advance
 *               the cursor; repeat until a page comes back short
 *   an event the subscriber may receive (hub) → wake: another catch-up (one at a time; a wake during
 *               one runs another after it)
 *
 * So an event published while the backfill runs is never lost (it wakes a catch-up after the current
 * one, which reads past the cursor) and never delivered twice (the cursor only moves forward, and the
 * events themselves are never delivered: they only wake). A failed read or resolution keeps the cursor
 * and retries with backoff; nothing after it is delivered first.
 */
import type { GraphQLDataSource } from '@apollo/gateway';
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Identity } from '@crm/runtime';
import type { Logger } from '@crm/telemetry';
import type { LiveOperation } from './operation';
import { LivePayload, type LiveQueue } from './queue';
import type { LiveField } from './topics';

/** Positions read per query; below the queue's bound, so a backfill never overflows it (it waits for the socket between pages). */
export const PAGE = 50;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;

export interface Position {
  id: string;
  /** The subscriber's order, as the subgraph gave it (a decimal string). */
  seq: string;
}

/** Where a catch-up starts: the id the client named, until the first delivery; then the last delivered position. */
export type Cursor = { after: string } | { afterSeq: string };

export type FetchPositions = (field: LiveField, identity: Identity, cursor: Cursor, first: number) => Promise<Position[]>;

/** The subgraph refused the cursor (`after` is not the subscriber's): BAD_USER_INPUT, not worth a retry. */
export class ResumeRefused extends GraphQLError {}

/**
 * Reads positions from the owning subgraph through the gateway's own data source for it: the same
 * signed identity (the subscriber's) as every fetch of a query plan, the same timeout.
 */
export function subgraphPositions(subgraphClient: (name: string) => GraphQLDataSource | undefined): FetchPositions {
  return async (field, identity, cursor, first) => {
    const spec = field.resume;
    if (!spec) throw new Error(`${field.field} cannot be resumed`);
    const source = subgraphClient(spec.subgraph);
    if (!source) throw unavailable(`the ${spec.subgraph} subgraph is not loaded yet`);
    const query = `query LiveResume($after: ID, $afterSeq: String, $first: Int!) { positions: ${spec.positionsQuery}(after: $after, afterSeq: $afterSeq, first: $first) { id seq } }`;
    const variables = { after: 'after' in cursor ? cursor.after : null, afterSeq: 'afterSeq' in cursor ? cursor.afterSeq : null, first };
    const response = await source.process({ kind: 'health check', request: { query, variables }, context: { identity } } as never);
    const error = response.errors?.[0];
    if (error) {
      if (error.extensions?.code === 'BAD_USER_INPUT') throw new ResumeRefused(error.message, { extensions: { code: 'BAD_USER_INPUT', argumentName: spec.arg } });
      throw unavailable(`${spec.subgraph}: ${error.message}`);
    }
    const positions = (response.data as { positions?: Position[] } | null | undefined)?.positions;
    if (!Array.isArray(positions)) throw unavailable(`${spec.subgraph} answered without positions`);
    return positions;
  };
}

const unavailable = (why: string) =>
  new GraphQLError(`Resuming the live feed is unavailable right now (${why}). Try again shortly.`, { extensions: { code: 'SERVICE_UNAVAILABLE' } });

export interface FeedOptions {
  op: LiveOperation;
  identity: Identity;
  queue: LiveQueue;
  cursor: Cursor;
  positions: FetchPositions;
  /** One entity through the federated plan with the subscriber's identity; null = not for this subscriber. */
  resolve(op: LiveOperation, identity: Identity, entityId: string): Promise<ExecutionResult | null>;
  resolveTimeoutMs: number;
  /** Each delivery (true) or drop (false), for the hub's stats. */
  counted(ok: boolean): void;
  logger: Logger;
}

export class ResumableFeed {
  private cursor: Cursor;
  private running = false;
  private again = false;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly options: FeedOptions) {
    this.cursor = options.cursor;
  }

  /** Something may be new: catch up (now, or right after the catch-up in flight). */
  wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }

  private async run(): Promise<void> {
    this.running = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    try {
      do {
        this.again = false;
        await this.catchUp();
      } while (this.again && !this.closed);
      this.retryMs = RETRY_MIN_MS;
    } catch (err) {
      if (this.closed) return;
      if (err instanceof ResumeRefused) {
        // The cursor's entity is gone (e.g. deleted since the subscribe checked it): the client must resubscribe.
        this.options.logger.warn({ userId: this.options.identity.userId, err: err.message }, 'live: resume cursor refused; ending the subscription');
        this.options.queue.end();
        return;
      }
      this.options.logger.warn({ userId: this.options.identity.userId, err, retryMs: this.retryMs }, 'live: catching up a resumed subscription failed; retrying');
      this.retry = setTimeout(() => this.wake(), this.retryMs);
      this.retry.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    } finally {
      this.running = false;
    }
  }

  private async catchUp(): Promise<void> {
    const { op, identity, queue } = this.options;
    for (;;) {
      if (this.closed || queue.closed) return;
      const page = await this.options.positions(op.field, identity, this.cursor, PAGE);
      for (const position of page) {
        if (this.closed || queue.closed) return;
        const result = await withTimeout(this.options.resolve(op, identity, position.id), this.options.resolveTimeoutMs);
        // No entity and errors (a subgraph away): retried, never skipped. Partial data goes out as a live event's would.
        if (result?.errors?.length && result.data?.[op.responseKey] == null) {
          throw unavailable(result.errors.map((e) => e.message).join('; '));
        }
        if (result) {
          const ok = queue.push(new LivePayload(result));
          this.options.counted(ok);
          if (!ok) return; // too slow (closed 4429) or ended
        }
        this.cursor = { afterSeq: position.seq };
      }
      await queue.idle();
      if (page.length < PAGE) return;
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`resolution took over ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
