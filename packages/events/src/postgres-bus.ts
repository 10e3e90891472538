/**
 * The event log kept in Postgres (no Kafka configured, a Postgres server configured): a database
 * of its own on that server (`<DATABASE_PREFIX>events`, or EVENTS_DATABASE_URL), with what the
 * code relies on from Kafka:
 *  - topics with partitions (KAFKA_TOPIC_PARTITIONS, a .dlq beside each topic), a message's
 *    partition chosen by its key with Java's murmur2 partitioner (the same partition as on Kafka),
 *    gapless offsets per partition;
 *  - publish() resolves once the rows are committed (synchronous commit: on disk), so the outbox
 *    relay marks a row sent only when the log has it; calls are written in the order they were
 *    made (calls queued behind one in flight share its transaction: group commit);
 *  - consumer groups with committed offsets: a group's members share the partitions of its topics
 *    (each partition owned by one live member, recorded in the database); a batch is committed
 *    only after its handler returned, by its owner only (a member that lost a partition cannot
 *    commit over the new owner's progress);
 *  - membership with leases: a member renews its lease every `heartbeatMs`; one whose lease
 *    lapsed (`sessionMs`) or whose database session is gone (the process died) is removed by the
 *    others and its partitions are taken over from their last committed offset, so everything
 *    after the last commit is delivered again;
 *  - backpressure instead of loss: consumers pull a batch at a time from the table (nothing is
 *    queued in memory beyond the batch in hand), publish fails loudly when the database does not
 *    take the rows (the relay keeps them in the outbox and retries);
 *  - retention: messages older than the topic's retention (KAFKA_TOPIC_RETENTION_MS, the DLQ's
 *    KAFKA_DLQ_RETENTION_MS) AND below every group's committed offset are deleted; the offsets of
 *    a group without members that committed nothing for a retention period are forgotten first
 *    (Kafka's offsets.retention), so a group gone for good does not keep the log forever.
 * LISTEN/NOTIFY wakes consumers at once (new messages, a group that changed); a poll every
 * `pollMs` covers a missed notification. Topic and group names carry KAFKA_NAMESPACE as on Kafka.
 */
import { randomUUID } from 'node:crypto';
import { compatibilityPartitioner } from '@platformatic/kafka';
import { Client, Pool, type PoolClient } from 'pg';
import { databaseUrlFor, type PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';
import { retry, sleep } from '@crm/errors';
import { onlyOwnReplays, type BatchControl, type BusMessage, type DeliveredMessage, type EventBus, type SubscribeOptions, type Subscription } from './bus';
import { dlqOf } from './catalogue';
import type { PartitionOffsets } from './kafka-admin';

/** The notification channel of the log: `m\t<topic>\t<partition>\t<high>` (new messages) or `g\t<group>` (membership). */
const CHANNEL = 'crm_event_log';
/** Advisory lock keys (per database): the schema's creation, the retention pass. */
const SCHEMA_LOCK = 727_100;
const RETENTION_LOCK = 727_101;
const DELETE_CHUNK = 5000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS log_topics (
  topic text PRIMARY KEY,
  partitions int NOT NULL CHECK (partitions > 0),
  retention_ms bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS log_partitions (
  topic text NOT NULL REFERENCES log_topics ON DELETE CASCADE,
  partition int NOT NULL,
  low bigint NOT NULL DEFAULT 0,  -- first offset still kept
  high bigint NOT NULL DEFAULT 0, -- offset of the next message
  PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS log_messages (
  topic text NOT NULL,
  partition int NOT NULL,
  "offset" bigint NOT NULL,
  key text,
  value bytea,
  headers jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS log_members (
  group_id text NOT NULL,
  member_id text NOT NULL,
  topics text[] NOT NULL,
  expires_at timestamptz NOT NULL,
  session_pid int,
  session_start timestamptz,
  joined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, member_id)
);
CREATE TABLE IF NOT EXISTS log_offsets (
  group_id text NOT NULL,
  topic text NOT NULL,
  partition int NOT NULL,
  committed bigint,  -- offset of the next message to handle; NULL: nothing committed yet
  owner text,        -- member_id of the member that holds the partition
  committed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);
`;

/** A member that is no longer there: its lease lapsed, or the database session it registered with is gone. */
const DEAD_MEMBER = `(m.expires_at < now() OR (m.session_pid IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.session_pid AND (a.backend_start IS NULL OR a.backend_start = m.session_start))))`;

export interface PostgresBusOptions {
  /** Lease renewal interval of a group member. */
  heartbeatMs?: number;
  /** A member that did not renew its lease for this long is taken to be dead. */
  sessionMs?: number;
  /** Fallback poll for new messages and group changes, should a notification be missed. */
  pollMs?: number;
  /** Connections of the bus's pool (the LISTEN session is one more). */
  poolMax?: number;
}

export class PostgresBus implements EventBus {
  readonly kind = 'postgres' as const;
  readonly url: string;
  private readonly pool: Pool;
  private readonly ns: string;
  private readonly heartbeatMs: number;
  private readonly sessionMs: number;
  private readonly pollMs: number;
  private closed = false;
  private connected = false;
  private setup: Promise<void> | undefined;
  private setupDone = false;
  private listener: { client: Client; pid: number; start: string } | undefined;
  private listening: Promise<void> | undefined;
  private readonly subscriptions = new Set<GroupMember>();
  private retentionTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly publishQueue: { messages: BusMessage[]; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private publishing = false;

  constructor(
    private readonly config: PlatformConfig,
    private readonly clientId: string,
    private readonly logger?: Logger,
    options: PostgresBusOptions = {},
  ) {
    const url = postgresBusUrl(config);
    if (!url) throw new Error('the Postgres event log needs POSTGRES_URL (or EVENTS_DATABASE_URL)');
    this.url = url;
    this.ns = config.KAFKA_NAMESPACE;
    this.heartbeatMs = options.heartbeatMs ?? 2_000;
    this.sessionMs = options.sessionMs ?? 15_000;
    this.pollMs = options.pollMs ?? 2_000;
    this.pool = new Pool({ connectionString: url, max: options.poolMax ?? 3, application_name: `crm-log ${clientId}`.slice(0, 63), idleTimeoutMillis: 30_000 });
    this.pool.on('error', (err) => this.logger?.warn({ err: err.message }, 'event log: an idle connection failed'));
    // a connection that breaks between two statements of a checked-out client emits 'error' on that client
    this.pool.on('connect', (client) =>
      client.on('error', (err) => {
        this.connected = false;
        this.logger?.warn({ err: err.message }, 'event log: a connection failed');
      }),
    );
  }

  topic = (logical: string) => `${this.ns}${logical}`;
  private logical = (physical: string) => (this.ns && physical.startsWith(this.ns) ? physical.slice(this.ns.length) : physical);

  // ------------------------------------------------------------------ setup

  /** Creates the database and the tables (once per bus; retried by callers while the server is away). */
  ready(): Promise<void> {
    if (!this.setup) {
      this.setup = (async () => {
        await ensureDatabase(this.url);
        const client = await this.pool.connect();
        try {
          await client.query('BEGIN');
          await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
          await client.query(SCHEMA);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        } finally {
          client.release();
        }
        this.setupDone = true;
        this.connected = true;
        this.startTimers();
      })();
      this.setup.catch(() => (this.setup = undefined)); // the next caller tries again
    }
    return this.setup;
  }

  private startTimers(): void {
    if (this.closed || this.pollTimer) return;
    this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
    this.pollTimer.unref();
    const retentionEvery = Math.min(3_600_000, Math.max(60_000, Math.floor(this.config.KAFKA_TOPIC_RETENTION_MS / 24)));
    this.retentionTimer = setInterval(() => {
      this.applyRetention().catch((err: unknown) => this.logger?.warn({ err: (err as Error).message }, 'event log: retention pass failed; next time'));
    }, retentionEvery);
    this.retentionTimer.unref();
  }

  /** The LISTEN session (reconnected when it drops); members register its pid so a dead process is seen at once. */
  private listen(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    this.listening ??= (async () => {
      const client = new Client({ connectionString: this.url, application_name: `crm-log ${this.clientId} listen`.slice(0, 63) });
      client.on('error', (err) => this.logger?.warn({ err: err.message }, 'event log: LISTEN session failed; reconnecting'));
      client.on('notification', (n) => this.notified(n.payload ?? ''));
      client.on('end', () => {
        if (this.listener?.client !== client) return;
        this.listener = undefined;
        if (!this.closed) setTimeout(() => void this.listen().catch(() => undefined), 1000).unref();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANNEL}`);
        const { rows } = await client.query<{ pid: number; start: string }>('SELECT pid, backend_start::text AS start FROM pg_stat_activity WHERE pid = pg_backend_pid()');
        if (this.closed) {
          await client.end().catch(() => undefined);
          return;
        }
        this.listener = { client, pid: rows[0]!.pid, start: rows[0]!.start };
        for (const s of this.subscriptions) s.wake(true);
      } catch (err) {
        await client.end().catch(() => undefined);
        if (!this.closed) setTimeout(() => void this.listen().catch(() => undefined), 2000).unref();
        throw err;
      }
    })().finally(() => (this.listening = undefined));
    return this.listening;
  }

  /** The LISTEN session's identity (members record it: when it is gone, so is the member). */
  session(): { pid: number; start: string } | undefined {
    return this.listener ? { pid: this.listener.pid, start: this.listener.start } : undefined;
  }

  private notified(payload: string): void {
    const [kind, a, b, c] = payload.split('\t');
    if (kind === 'm' && a !== undefined && b !== undefined) {
      for (const s of this.subscriptions) s.messagesAt(a, Number(b), c === undefined ? undefined : BigInt(c));
    } else if (kind === 'g' && a !== undefined) {
      for (const s of this.subscriptions) if (s.group === a) s.wake(true);
    }
  }

  /** Fallback for missed notifications: the high offsets of every topic a member here reads. */
  private async poll(): Promise<void> {
    if (this.closed || this.subscriptions.size === 0) return;
    const topics = [...new Set([...this.subscriptions].flatMap((s) => s.topics))];
    try {
      const { rows } = await this.pool.query<{ topic: string; partition: number; high: string }>('SELECT topic, partition, high::text FROM log_partitions WHERE topic = ANY($1)', [
        topics,
      ]);
      this.connected = true;
      for (const r of rows) for (const s of this.subscriptions) s.messagesAt(r.topic, r.partition, BigInt(r.high));
      if (!this.listener) void this.listen().catch(() => undefined);
    } catch {
      this.connected = false;
    }
  }

  // ------------------------------------------------------------------ publish

  /**
   * Appends the messages (in call order) and resolves once their transaction committed. Calls made
   * while one is being written are written together next, in one transaction.
   */
  publish(messages: BusMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('bus is closed'));
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.publishQueue.push({ messages, resolve, reject });
      if (!this.publishing) void this.flushPublishes();
    });
  }

  private async flushPublishes(): Promise<void> {
    this.publishing = true;
    try {
      while (this.publishQueue.length > 0) {
        const calls = this.publishQueue.splice(0, this.publishQueue.length);
        try {
          await this.append(calls.flatMap((c) => c.messages));
          for (const c of calls) c.resolve();
        } catch (err) {
          if (calls.length === 1) {
            calls[0]!.reject(err);
            continue;
          }
          // one call's fault should not fail the others: each on its own, in order
          for (const c of calls) await this.append(c.messages).then(c.resolve, c.reject);
        }
      }
    } finally {
      this.publishing = false;
    }
  }

  private async append(messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    await this.ready();
    // grouped by partition, in call order within each; partitions locked in one order (no deadlocks)
    const partitionsOf = await this.partitionCounts([...new Set(messages.map((m) => this.topic(m.topic)))]);
    const groups = new Map<string, { topic: string; partition: number; messages: BusMessage[] }>();
    for (const m of messages) {
      const topic = this.topic(m.topic);
      const count = partitionsOf.get(topic);
      if (count === undefined) throw new Error(`event log: topic ${topic} does not exist (ensureTopics first)`);
      const partition = partitionFor(m.key, count);
      const id = `${topic}\t${partition}`;
      let group = groups.get(id);
      if (!group) groups.set(id, (group = { topic, partition, messages: [] }));
      group.messages.push(m);
    }
    const ordered = [...groups.values()].sort((x, y) => (x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : x.partition - y.partition));
    const client = await this.connect();
    try {
      await client.query('BEGIN');
      // durable when publish resolves, whatever the server's default (an outbox row is marked sent then)
      await client.query('SET LOCAL synchronous_commit TO on');
      const notes: string[] = [];
      for (const g of ordered) {
        const { rows } = await client.query<{ high: string }>(
          `WITH p AS (UPDATE log_partitions SET high = high + $3 WHERE topic = $1 AND partition = $2 RETURNING high - $3 AS base),
                ins AS (INSERT INTO log_messages (topic, partition, "offset", key, value, headers)
                        SELECT $1, $2, p.base + u.i - 1, u.key, u.value, u.headers
                        FROM p, unnest($4::text[], $5::bytea[], $6::jsonb[]) WITH ORDINALITY AS u(key, value, headers, i)
                        RETURNING 1)
           SELECT (p.base + $3)::text AS high, (SELECT count(*) FROM ins) AS n FROM p`,
          [
            g.topic,
            g.partition,
            g.messages.length,
            g.messages.map((m) => m.key),
            g.messages.map((m) => Buffer.from(m.value)),
            g.messages.map((m) => JSON.stringify(m.headers ?? {})),
          ],
        );
        if (rows.length === 0) throw new Error(`event log: partition ${g.partition} of ${g.topic} does not exist`);
        notes.push(`m\t${g.topic}\t${g.partition}\t${rows[0]!.high}`);
      }
      for (const note of notes) await client.query('SELECT pg_notify($1, $2)', [CHANNEL, note]);
      await client.query('COMMIT');
    } catch (err) {
      this.connected = false; // healthy() checks again in the background
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private readonly partitionCache = new Map<string, number>();

  private async partitionCounts(topics: string[]): Promise<Map<string, number>> {
    const missing = topics.filter((t) => !this.partitionCache.has(t));
    if (missing.length > 0) {
      const rows = await this.query<{ topic: string; partitions: number }>('SELECT topic, partitions FROM log_topics WHERE topic = ANY($1)', [missing]);
      for (const r of rows) this.partitionCache.set(r.topic, r.partitions);
    }
    return this.partitionCache;
  }

  /** A pooled connection; the bus is marked unhealthy while the server does not answer. */
  async connect(): Promise<PoolClient> {
    try {
      const client = await this.pool.connect();
      this.connected = true;
      return client;
    } catch (err) {
      this.connected = false;
      throw err;
    }
  }

  async query<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      const { rows } = await this.pool.query<R>(sql, params);
      this.connected = true;
      return rows;
    } catch (err) {
      if (isConnectionError(err)) this.connected = false;
      throw err;
    }
  }

  // ------------------------------------------------------------------ topics

  /** Creates the topics (and their .dlq) that do not exist yet, with their partitions. */
  async ensureTopics(topics: string[], deadlineMs = 60_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    await retry(
      async () => {
        await this.ready();
        const all = [...new Set(topics.flatMap((t) => [t, dlqOf(t)]))].map(this.topic);
        const partitions = this.config.KAFKA_TOPIC_PARTITIONS;
        const { rows } = await this.pool.query<{ topic: string }>(
          `WITH t AS (INSERT INTO log_topics (topic, partitions, retention_ms)
                    SELECT name, $2, CASE WHEN name LIKE '%.dlq' THEN $4::bigint ELSE $3::bigint END FROM unnest($1::text[]) AS name
                    ON CONFLICT (topic) DO NOTHING RETURNING topic, partitions)
         INSERT INTO log_partitions (topic, partition) SELECT t.topic, p FROM t, generate_series(0, t.partitions - 1) AS p
         RETURNING topic`,
          [all, partitions, this.config.KAFKA_TOPIC_RETENTION_MS, this.config.KAFKA_DLQ_RETENTION_MS],
        );
        const created = [...new Set(rows.map((r) => r.topic))];
        if (created.length > 0) this.logger?.info({ topics: created }, 'event log topics created');
      },
      {
        baseDelayMs: 200,
        maxDelayMs: 5000,
        shouldRetry: () => Date.now() <= deadline && !this.closed,
        onRetry: ({ error, attempt }) => this.logger?.warn({ err: (error as Error).message, attempt }, 'event log: topic creation not possible yet; retrying'),
      },
    );
  }

  /**
   * Provisions `topics`, in the background while the server is away: 'ready' once they exist,
   * 'degraded' as soon as the first attempt failed or `waitMs` passed (writes then wait in the
   * outbox; consumers join once the server answers).
   */
  async prepare(topics: string[], waitMs = 60_000): Promise<'ready' | 'degraded'> {
    let firstFailure!: () => void;
    const failed = new Promise<'degraded'>((resolve) => (firstFailure = () => resolve('degraded')));
    let attempts = 0;
    const provisioned = retry(
      async () => {
        attempts += 1;
        try {
          await this.ensureTopics(topics, 0);
        } catch (err) {
          if (attempts === 1) {
            this.logger?.warn({ err: (err as Error).message }, 'event log: Postgres unreachable; serving without events until it is back (writes wait in the outbox)');
            firstFailure();
          }
          throw err;
        }
      },
      { baseDelayMs: 500, maxDelayMs: 5000, shouldRetry: () => !this.closed },
    ).then(() => {
      if (attempts > 1) this.logger?.info('event log: Postgres reachable again; topics provisioned');
      return 'ready' as const;
    });
    provisioned.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'degraded'>((resolve) => (timer = setTimeout(() => resolve('degraded'), waitMs)));
    try {
      return await Promise.race([provisioned.catch(() => 'degraded' as const), failed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async healthy(): Promise<boolean> {
    if (this.connected && this.setupDone) return true;
    if (!this.closed)
      void this.ready()
        .then(() => this.pool.query('SELECT 1'))
        .then(
          () => void (this.connected = !this.closed),
          () => undefined,
        );
    return false;
  }

  // ------------------------------------------------------------------ consume

  /**
   * Joins `groupId` as a new member and delivers the partitions it is given. Returns once the
   * member has joined (or at once while the server is away: it joins when the server answers).
   */
  async subscribe(given: SubscribeOptions): Promise<Subscription> {
    const options = onlyOwnReplays(given); // a replayed dead letter reaches only the group that failed it
    if (!options.handle && !options.handleBatch) throw new Error('subscribe needs handle or handleBatch');
    if (this.closed) throw new Error('bus is closed');
    const member = new GroupMember(this, options, this.logger, { heartbeatMs: this.heartbeatMs, sessionMs: this.sessionMs });
    this.subscriptions.add(member);
    const joined = member.start(async () => {
      await this.ready();
      await this.listen().catch(() => undefined); // polling covers a LISTEN session that fails
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([joined, new Promise((r) => (timer = setTimeout(r, 60_000)))]).finally(() => clearTimeout(timer));
    return {
      active: () => !this.closed && member.active(),
      stop: async () => {
        await member.stop();
        this.subscriptions.delete(member);
      },
    };
  }

  /** Sends a group-change notification (another member should look at the group again). */
  async notifyGroup(group: string): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, `g\t${group}`]).catch(() => undefined);
  }

  // ------------------------------------------------------------------ retention

  /**
   * One retention pass (one bus at a time, under an advisory lock): forgets the offsets of groups
   * without members that committed nothing for a retention period, then deletes per partition
   * the messages older than the retention that every group has committed past.
   */
  async applyRetention(): Promise<{ messages: number; groups: number }> {
    await this.ready();
    const client = await this.connect();
    try {
      const [lock] = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [RETENTION_LOCK])).rows;
      if (!lock?.ok) return { messages: 0, groups: 0 };
      try {
        const forgotten = await client.query(
          `DELETE FROM log_offsets o USING log_topics t
           WHERE t.topic = o.topic AND o.committed_at < now() - t.retention_ms * interval '1 millisecond'
             AND NOT EXISTS (SELECT 1 FROM log_members m WHERE m.group_id = o.group_id AND m.expires_at > now())`,
        );
        let deleted = 0;
        const { rows } = await client.query<{ topic: string; partition: number; low: string; upto: string }>(
          `SELECT p.topic, p.partition, p.low::text,
                  LEAST(
                    COALESCE((SELECT min(COALESCE(o.committed, p.low)) FROM log_offsets o WHERE o.topic = p.topic AND o.partition = p.partition), p.high),
                    COALESCE((SELECT max(m."offset") + 1 FROM log_messages m
                              WHERE m.topic = p.topic AND m.partition = p.partition AND m."offset" >= p.low
                                AND m.created_at < now() - t.retention_ms * interval '1 millisecond'), p.low)
                  )::text AS upto
           FROM log_partitions p JOIN log_topics t USING (topic)`,
        );
        for (const r of rows) deleted += await this.truncate(client, r.topic, r.partition, BigInt(r.low), BigInt(r.upto));
        if (deleted + (forgotten.rowCount ?? 0) > 0) this.logger?.info({ messages: deleted, groupOffsets: forgotten.rowCount }, 'event log: retention deleted old messages');
        return { messages: deleted, groups: forgotten.rowCount ?? 0 };
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [RETENTION_LOCK]).catch(() => undefined);
      }
    } finally {
      client.release();
    }
  }

  /** Deletes the messages of a partition below `upto` (from `low`, in chunks) and moves its low mark. */
  async truncate(client: PoolClient | Pool, topic: string, partition: number, low: bigint, upto: bigint): Promise<number> {
    let deleted = 0;
    for (let from = low; from < upto; from += BigInt(DELETE_CHUNK)) {
      const to = from + BigInt(DELETE_CHUNK) < upto ? from + BigInt(DELETE_CHUNK) : upto;
      const r = await client.query('DELETE FROM log_messages WHERE topic = $1 AND partition = $2 AND "offset" >= $3 AND "offset" < $4', [
        topic,
        partition,
        String(from),
        String(to),
      ]);
      deleted += r.rowCount ?? 0;
      await client.query('UPDATE log_partitions SET low = GREATEST(low, $3) WHERE topic = $1 AND partition = $2', [topic, partition, String(to)]);
    }
    return deleted;
  }

  // ------------------------------------------------------------------ status

  /** Messages of `topics` (logical) that `group` has not committed yet, per partition (lag metrics). */
  async lag(group: string, topics: string[]): Promise<{ topic: string; partition: number; lag: number }[]> {
    const rows = await this.query<{ topic: string; partition: number; lag: string }>(
      `SELECT p.topic, p.partition, GREATEST(0, p.high - COALESCE(o.committed, p.low))::text AS lag
       FROM log_partitions p LEFT JOIN log_offsets o ON o.group_id = $1 AND o.topic = p.topic AND o.partition = p.partition
       WHERE p.topic = ANY($2) ORDER BY p.topic, p.partition`,
      [this.topic(group), topics.map(this.topic)],
    );
    return rows.map((r) => ({ topic: this.logical(r.topic), partition: r.partition, lag: Number(r.lag) }));
  }

  /** Partitions and retention of existing topics (logical names). */
  async describeTopics(topics: string[]): Promise<{ topic: string; partitions: number; retentionMs: number }[]> {
    const admin = this.admin();
    return (await admin.describeTopics(topics.map(this.topic))).map((t) => ({ ...t, topic: this.logical(t.topic) }));
  }

  /** The admin operations of the status and dead-letter commands (physical names, as KafkaAdmin). */
  admin(): PostgresLogAdmin {
    return new PostgresLogAdmin(this);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.subscriptions].map((s) => s.stop().catch(() => undefined)));
    this.closed = true;
    this.subscriptions.clear();
    clearInterval(this.pollTimer);
    clearInterval(this.retentionTimer);
    await this.listening?.catch(() => undefined);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.client.end().catch(() => undefined);
    // publishes already queued fail loudly rather than hang
    for (const c of this.publishQueue.splice(0)) c.reject(new Error('bus is closed'));
    await this.pool.end().catch(() => undefined);
  }

  /** @internal for GroupMember */
  isClosed(): boolean {
    return this.closed;
  }
}

/** The events database of `config`: EVENTS_DATABASE_URL, else POSTGRES_URL with database <prefix>events. */
export function postgresBusUrl(config: PlatformConfig, env?: NodeJS.ProcessEnv): string | undefined {
  return databaseUrlFor(config, 'events', env);
}

/** Java's DefaultPartitioner (toPositive(murmur2(key)) % n): a key lands on the partition it has on Kafka. */
export function partitionFor(key: string, partitions: number): number {
  return compatibilityPartitioner(undefined as never, Buffer.from(key)) % partitions;
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|57P0[1-3]|08\w{3})$/.test(code) || /Connection terminated|connection timeout/i.test(String((err as Error)?.message))
  );
}

/** CREATE DATABASE when missing ("already exists" from a concurrent starter is fine). */
async function ensureDatabase(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!/^[a-zA-Z0-9_]+$/.test(name)) throw new Error(`Refusing to create a database with the unusual name "${name}"`);
  // The database itself first: if it answers, nothing to create (and no rights on `postgres` needed).
  const direct = new Client({ connectionString: url });
  try {
    await direct.connect();
    await direct.end();
    return;
  } catch (err) {
    await direct.end().catch(() => undefined);
    if ((err as { code?: string }).code !== '3D000') throw err; // 3D000: database does not exist
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`).catch((err: { code?: string }) => {
      if (err.code !== '42P04' && err.code !== '23505') throw err;
    });
  } finally {
    await client.end();
  }
}

// -------------------------------------------------------------------- a member of a consumer group

interface Owned {
  topic: string;
  partition: number;
  /** Next offset to read. */
  position: bigint;
  /** Highest offset + 1 known to exist (from notifications and polls). */
  high: bigint;
  /** Set when the partition is to be given up (rebalance, stop): the batch in hand sees active() false. */
  revoked: boolean;
  busy: boolean;
}

class GroupMember {
  readonly group: string;
  readonly topics: string[];
  readonly id = randomUUID();
  private readonly owned = new Map<string, Owned>();
  private running = true;
  private joined = false;
  private reachable = true;
  private wakeLoop: (() => void) | undefined;
  /** A wake-up that came while the loop was busy: its next nap returns at once. */
  private woken = false;
  private rebalanceWanted = true;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly workers = new Set<Promise<void>>();
  private readonly size: number;
  private readonly concurrency: number;
  private readonly lingerMs: number;

  constructor(
    private readonly bus: PostgresBus,
    private readonly options: SubscribeOptions,
    private readonly logger: Logger | undefined,
    private readonly timing: { heartbeatMs: number; sessionMs: number },
  ) {
    this.group = bus.topic(options.groupId);
    this.topics = options.topics.map(bus.topic);
    this.size = options.handleBatch ? Math.max(1, options.batchSize ?? 500) : 100;
    this.concurrency = options.handleBatch ? Math.max(1, options.partitionsConcurrently ?? 1) : 1;
    this.lingerMs = options.handleBatch ? (options.lingerMs ?? 0) : 0;
  }

  /** Joined, and the log answered the last time the member looked (false while the server is away). */
  active(): boolean {
    return this.running && this.joined && this.reachable;
  }

  /** Wakes the loop; `rebalance`: look at the group's members again. */
  wake(rebalance = false): void {
    if (rebalance) this.rebalanceWanted = true;
    this.poke();
  }

  private poke(): void {
    if (this.wakeLoop) this.wakeLoop();
    else this.woken = true;
  }

  /** Messages up to `high` exist on a partition: work it if it is ours. */
  messagesAt(topic: string, partition: number, high?: bigint): void {
    const o = this.owned.get(`${topic}\t${partition}`);
    if (!o) return;
    if (high === undefined) o.high = o.position + 1n;
    else if (high > o.high) o.high = high;
    if (o.high > o.position && !o.busy) this.poke();
  }

  /** Runs the member's loop; resolves once it joined the group the first time (or failed to: it goes on trying). */
  start(before: () => Promise<void>): Promise<void> {
    let joinedOnce!: () => void;
    const joined = new Promise<void>((r) => (joinedOnce = r));
    this.loopDone = this.loop(before, joinedOnce);
    return joined;
  }

  private async loop(before: () => Promise<void>, joinedOnce: () => void): Promise<void> {
    let failures = 0;
    let lastBeat = 0;
    let beats = 0;
    while (this.running && !this.bus.isClosed()) {
      try {
        if (!this.joined) {
          await before();
          await this.join();
          joinedOnce();
          lastBeat = Date.now();
        } else if (Date.now() - lastBeat >= this.timing.heartbeatMs) {
          lastBeat = Date.now();
          await this.heartbeat();
          // now and then, look at the group again anyway (topics created later, a missed notification)
          if (++beats % 5 === 0) this.rebalanceWanted = true;
        }
        if (this.rebalanceWanted && this.joined) {
          this.rebalanceWanted = false;
          await this.rebalance();
        }
        if (failures > 0) this.logger?.info({ group: this.group }, 'event log: consumer back');
        failures = 0;
        this.reachable = true;
        this.schedule();
      } catch (err) {
        failures += 1;
        this.reachable = false;
        joinedOnce(); // subscribe() returns while the server is away; the member joins when it is back
        if (failures === 1 || failures % 10 === 0) {
          this.logger?.warn({ err: (err as Error).message, group: this.group, failures }, 'event log: consumer cannot reach the log; retrying');
        }
        this.rebalanceWanted = true;
        await this.nap(Math.min(5000, 200 * 2 ** Math.min(failures, 5)));
        continue;
      }
      await this.nap(Math.max(10, this.timing.heartbeatMs - (Date.now() - lastBeat)));
    }
  }

  private nap(ms: number): Promise<void> {
    if (this.woken || !this.running) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeLoop = done;
    }).finally(() => (this.wakeLoop = undefined));
  }

  private async join(): Promise<void> {
    const session = this.bus.session();
    await this.bus.query(
      `INSERT INTO log_members (group_id, member_id, topics, expires_at, session_pid, session_start)
       VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond', $5, $6::timestamptz)
       ON CONFLICT (group_id, member_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, session_pid = EXCLUDED.session_pid, session_start = EXCLUDED.session_start`,
      [this.group, this.id, this.topics, this.timing.sessionMs, session?.pid ?? null, session?.start ?? null],
    );
    this.joined = true;
    this.rebalanceWanted = true;
    await this.bus.notifyGroup(this.group);
  }

  /** Renews the lease (and the session it is tied to); removes members that are gone. */
  private async heartbeat(): Promise<void> {
    const session = this.bus.session();
    const [r] = await this.bus.query<{ alive: string; dead: string }>(
      `WITH beat AS (
         UPDATE log_members SET expires_at = now() + $3 * interval '1 millisecond',
                session_pid = COALESCE($4, session_pid), session_start = COALESCE($5::timestamptz, session_start)
         WHERE group_id = $1 AND member_id = $2 RETURNING 1),
       dead AS (DELETE FROM log_members m WHERE m.group_id = $1 AND m.member_id <> $2 AND ${DEAD_MEMBER} RETURNING 1)
       SELECT (SELECT count(*) FROM beat)::text AS alive, (SELECT count(*) FROM dead)::text AS dead`,
      [this.group, this.id, this.timing.sessionMs, session?.pid ?? null, session?.start ?? null],
    );
    if (r?.alive === '0') {
      // our lease lapsed and another member removed us: our partitions may have a new owner
      this.logger?.warn({ group: this.group, member: this.id }, "event log: this member's lease lapsed; rejoining (batches in hand are given up)");
      for (const o of this.owned.values()) o.revoked = true;
      await Promise.all([...this.workers]);
      this.owned.clear();
      this.joined = false;
      return;
    }
    if (r?.dead !== '0') {
      this.rebalanceWanted = true;
      await this.bus.notifyGroup(this.group);
    }
  }

  /** Which partitions are this member's now: every live member of the group computes the same answer. */
  private async rebalance(): Promise<void> {
    const members = await this.bus.query<{ member_id: string; topics: string[] }>(
      `SELECT member_id, topics FROM log_members m WHERE m.group_id = $1 AND (m.member_id = $2 OR NOT ${DEAD_MEMBER}) ORDER BY member_id`,
      [this.group, this.id],
    );
    const partitions = await this.bus.query<{ topic: string; partition: number; low: string; high: string }>(
      'SELECT topic, partition, low::text, high::text FROM log_partitions WHERE topic = ANY($1) ORDER BY topic, partition',
      [this.topics],
    );
    // round robin over (topic, partition) among the members that read the topic
    const target = new Set<string>();
    const turn = new Map<string, number>();
    let next = 0;
    for (const p of partitions) {
      const readers = members.filter((m) => m.topics.includes(p.topic));
      if (readers.length === 0) continue;
      const key = readers.map((m) => m.member_id).join(',');
      const i = turn.get(key) ?? next++;
      turn.set(key, i + 1);
      if (readers[i % readers.length]!.member_id === this.id) target.add(`${p.topic}\t${p.partition}`);
    }
    // give up what is no longer ours (after the batch in hand), so its new owner can take it
    let released = false;
    for (const [k, o] of this.owned) {
      if (target.has(k)) {
        if (o.revoked && !o.busy && this.running) o.revoked = false; // ours again before we let it go
        continue;
      }
      o.revoked = true;
      if (o.busy) continue; // released when its worker is done (schedule() runs again then)
      this.owned.delete(k);
      await this.bus.query('UPDATE log_offsets SET owner = NULL WHERE group_id = $1 AND topic = $2 AND partition = $3 AND owner = $4', [this.group, o.topic, o.partition, this.id]);
      released = true;
    }
    if (released) await this.bus.notifyGroup(this.group);
    // take what is ours and free (no owner, or an owner that is gone)
    let waiting = false;
    for (const p of partitions) {
      const k = `${p.topic}\t${p.partition}`;
      if (!target.has(k) || this.owned.has(k)) continue;
      const [claimed] = await this.bus.query<{ committed: string | null }>(
        `INSERT INTO log_offsets AS o (group_id, topic, partition, committed, owner, committed_at) VALUES ($1, $2, $3, NULL, $4, now())
         ON CONFLICT (group_id, topic, partition) DO UPDATE SET owner = EXCLUDED.owner
           WHERE o.owner IS NULL OR o.owner = EXCLUDED.owner OR NOT EXISTS (
             SELECT 1 FROM log_members m WHERE m.group_id = o.group_id AND m.member_id = o.owner AND NOT ${DEAD_MEMBER})
         RETURNING committed::text`,
        [this.group, p.topic, p.partition, this.id],
      );
      if (!claimed) {
        waiting = true; // its owner gives it up after its batch, and notifies
        continue;
      }
      let position: bigint;
      if (claimed.committed !== null) position = BigInt(claimed.committed);
      else if (this.options.fromLatest) {
        // a new group reading from the latest: fix the starting point, so a later owner starts there too
        const [fixed] = await this.bus.query<{ committed: string }>(
          `UPDATE log_offsets SET committed = COALESCE(committed, (SELECT high FROM log_partitions WHERE topic = $2 AND partition = $3)), committed_at = now()
           WHERE group_id = $1 AND topic = $2 AND partition = $3 AND owner = $4 RETURNING committed::text`,
          [this.group, p.topic, p.partition, this.id],
        );
        if (!fixed) continue;
        position = BigInt(fixed.committed);
      } else position = BigInt(p.low);
      this.owned.set(k, { topic: p.topic, partition: p.partition, position, high: BigInt(p.high), revoked: false, busy: false });
    }
    if (waiting) setTimeout(() => this.wake(true), this.timing.heartbeatMs).unref(); // in case its notification is missed
  }

  /** Starts workers for partitions with messages, up to the concurrency. */
  private schedule(): void {
    if (!this.running) return;
    let busy = [...this.owned.values()].filter((o) => o.busy).length;
    for (const o of this.owned.values()) {
      if (busy >= this.concurrency) return;
      if (o.busy || o.revoked || o.high <= o.position) continue;
      o.busy = true;
      busy += 1;
      const w = this.work(o).finally(() => {
        o.busy = false;
        this.workers.delete(w);
        if (o.revoked)
          this.wake(true); // release it now
        else if (this.running) this.schedule();
      });
      this.workers.add(w);
    }
  }

  /** Reads, handles and commits one batch of a partition. */
  private async work(o: Owned): Promise<void> {
    const current = () => this.running && !o.revoked && !this.bus.isClosed();
    let rows: { offset: string; key: string | null; value: Buffer | null; headers: Record<string, string> }[];
    const seenHigh = o.high;
    const read = (): Promise<typeof rows> =>
      this.bus.query(
        'SELECT "offset"::text AS "offset", key, value, headers FROM log_messages WHERE topic = $1 AND partition = $2 AND "offset" >= $3 ORDER BY log_messages."offset" LIMIT $4',
        [o.topic, o.partition, String(o.position), this.size],
      );
    try {
      rows = await read();
      if (rows.length > 0 && rows.length < this.size && this.lingerMs > 0) {
        await sleep(this.lingerMs); // what is published on the partition meanwhile joins the batch
        if (!current()) return;
        rows = await read();
      }
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message, group: this.group }, 'event log: read failed; retrying');
      await new Promise((r) => setTimeout(r, 1000));
      return;
    }
    if (rows.length === 0) {
      if (o.high === seenHigh) o.high = o.position; // nothing more for now (a notification or poll says when)
      return;
    }
    const logicalTopic = this.options.topics[this.topics.indexOf(o.topic)] ?? o.topic;
    const batch: DeliveredMessage[] = rows.map((r) => ({
      topic: logicalTopic,
      partition: o.partition,
      offset: r.offset,
      key: r.key,
      value: r.value,
      headers: r.headers ?? {},
    }));
    const control: BatchControl = { active: current };
    let handled = 0;
    let failures = 0;
    while (handled < batch.length) {
      try {
        if (this.options.handleBatch) {
          await this.options.handleBatch(batch, control);
          handled = batch.length;
        } else {
          while (handled < batch.length) {
            await this.options.handle!(batch[handled]!);
            handled += 1;
          }
        }
        break;
      } catch (err) {
        failures += 1;
        if (!current()) break; // given up: the next owner starts from the last commit
        this.logger?.error({ err, group: this.group, topic: logicalTopic, partition: o.partition, attempt: failures }, 'event log: handler threw; redelivering');
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** Math.min(failures - 1, 5))));
        if (!current()) break;
      }
    }
    if (handled === 0) return;
    const next = BigInt(batch[handled - 1]!.offset) + 1n;
    try {
      const [ok] = await this.bus.query<{ ok: number }>(
        'UPDATE log_offsets SET committed = $5, committed_at = now() WHERE group_id = $1 AND topic = $2 AND partition = $3 AND owner = $4 RETURNING 1 AS ok',
        [this.group, o.topic, o.partition, this.id, String(next)],
      );
      if (!ok) {
        // the partition has another owner now (our lease lapsed): it reads from the last commit
        this.logger?.warn({ group: this.group, topic: o.topic, partition: o.partition }, 'event log: partition taken over by another member; batch not committed');
        o.revoked = true;
        this.owned.delete(`${o.topic}\t${o.partition}`);
        return;
      }
      o.position = next;
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message, group: this.group }, 'event log: offset commit failed (the batch may come again)');
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const o of this.owned.values()) o.revoked = true;
    this.poke();
    await Promise.all([...this.workers]);
    await this.loopDone;
    if (!this.joined) return;
    this.joined = false;
    // leave: partitions free at once for the others, who are told
    await this.bus.query('UPDATE log_offsets SET owner = NULL WHERE group_id = $1 AND owner = $2', [this.group, this.id]).catch(() => undefined);
    await this.bus.query('DELETE FROM log_members WHERE group_id = $1 AND member_id = $2', [this.group, this.id]).catch(() => undefined);
    this.owned.clear();
    await this.bus.notifyGroup(this.group);
  }
}

/** What the status and dead-letter commands ask of the log (physical names), as KafkaAdmin answers them. */
export class PostgresLogAdmin {
  constructor(private readonly bus: PostgresBus) {}

  /** Every operation on a log that may not exist yet (a fresh server): created first, empty. */
  private async query<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    await this.bus.ready();
    return this.bus.query<R>(sql, params);
  }

  async listTopics(): Promise<string[]> {
    return (await this.query<{ topic: string }>('SELECT topic FROM log_topics ORDER BY topic')).map((r) => r.topic);
  }

  async describeTopics(topics: string[]): Promise<{ topic: string; partitions: number; retentionMs: number }[]> {
    const rows = await this.query<{ topic: string; partitions: number; retention_ms: string }>(
      'SELECT topic, partitions, retention_ms::text FROM log_topics WHERE topic = ANY($1)',
      [topics],
    );
    return topics.map((t) => {
      const r = rows.find((x) => x.topic === t);
      return { topic: t, partitions: r?.partitions ?? 0, retentionMs: Number(r?.retention_ms ?? NaN) };
    });
  }

  async topicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const rows = await this.query<{ partition: number; low: string; high: string }>(
      'SELECT partition, low::text, high::text FROM log_partitions WHERE topic = $1 ORDER BY partition',
      [topic],
    );
    return rows.map((r) => ({ partition: r.partition, low: BigInt(r.low), high: BigInt(r.high) }));
  }

  /** Committed offset of `groupId` per topic and partition (-1n: nothing committed). */
  async committedOffsets(groupId: string, topics: string[]): Promise<Map<string, Map<number, bigint>>> {
    const rows = await this.query<{ topic: string; partition: number; committed: string | null }>(
      'SELECT topic, partition, committed::text FROM log_offsets WHERE group_id = $1 AND topic = ANY($2)',
      [groupId, topics],
    );
    const out = new Map<string, Map<number, bigint>>(topics.map((t) => [t, new Map()]));
    for (const r of rows) out.get(r.topic)?.set(r.partition, r.committed === null ? -1n : BigInt(r.committed));
    return out;
  }

  async listGroups(): Promise<string[]> {
    const rows = await this.query<{ group_id: string }>('SELECT group_id FROM log_offsets UNION SELECT group_id FROM log_members ORDER BY 1');
    return rows.map((r) => r.group_id);
  }

  async deleteGroups(groups: string[]): Promise<void> {
    if (groups.length === 0) return;
    await this.query('DELETE FROM log_offsets WHERE group_id = ANY($1)', [groups]);
    await this.query('DELETE FROM log_members WHERE group_id = ANY($1)', [groups]);
  }

  /** Deletes the records of `topic` before `offset` in each partition. */
  async deleteRecords(topic: string, partitions: { partition: number; offset: bigint }[]): Promise<void> {
    for (const { partition, offset } of partitions) {
      const [p] = await this.query<{ low: string; high: string }>('SELECT low::text, high::text FROM log_partitions WHERE topic = $1 AND partition = $2', [topic, partition]);
      if (!p) continue;
      const upto = offset < BigInt(p.high) ? offset : BigInt(p.high);
      const client = await this.bus.connect();
      try {
        await this.bus.truncate(client, topic, partition, BigInt(p.low), upto);
      } finally {
        client.release();
      }
    }
  }

  async close(): Promise<void> {
    // shares the bus's pool
  }
}
