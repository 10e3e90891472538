/**
 * What the platform asks of Kafka's admin API (topics, offsets, groups, dead-letter purge), on
 * @platformatic/kafka's Admin, in plain types so that callers (kafka:status, kafka:dlq, lag
 * metrics, tests, the bench) do not depend on the client library. Names here are physical (with
 * the namespace). The client connects lazily; close() when done.
 */
import { Admin, ConfigResourceTypes, ListOffsetTimestamps, type BaseOptions } from '@platformatic/kafka';

export interface PartitionOffsets {
  partition: number;
  /** First offset still kept. */
  low: bigint;
  /** Offset the next message will get. */
  high: bigint;
}

export interface GroupDescription {
  /** Kafka's group state: STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD. */
  state: string;
  members: { id: string; clientHost: string; partitions: number }[];
}

export class KafkaAdmin {
  private readonly admin: Admin;

  constructor(options: BaseOptions) {
    this.admin = new Admin(options);
  }

  listTopics(): Promise<string[]> {
    return this.admin.listTopics();
  }

  /** Creates topics with their own partitions and retention; returns the names that already existed. */
  async createTopics(topics: { topic: string; partitions: number; retentionMs: number }[]): Promise<string[]> {
    const existed: string[] = [];
    for (const { topic, partitions, retentionMs } of topics) {
      try {
        await this.admin.createTopics({ topics: [topic], partitions, replicas: -1, configs: [{ name: 'retention.ms', value: String(retentionMs) }] });
      } catch (err) {
        // another client created it meanwhile
        if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS')) throw err;
        existed.push(topic);
      }
    }
    return existed;
  }

  /** Topics of `topics` that do not exist yet or have a partition without a leader. */
  async withoutLeaders(topics: string[]): Promise<string[]> {
    const meta = await this.admin.metadata({ topics, forceUpdate: true });
    return topics.filter((t) => {
      const m = meta.topics.get(t);
      return !m || m.partitions.length === 0 || !m.partitions.every((p) => p.leader >= 0);
    });
  }

  async describeTopics(topics: string[]): Promise<{ topic: string; partitions: number; retentionMs: number }[]> {
    const meta = await this.admin.metadata({ topics, forceUpdate: true });
    const configs = await this.admin.describeConfigs({
      resources: topics.map((t) => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: t, configurationKeys: ['retention.ms'] })),
    });
    return topics.map((t) => ({
      topic: t,
      partitions: meta.topics.get(t)?.partitionsCount ?? 0,
      retentionMs: Number(configs.find((c) => c.resourceName === t)?.configs.find((c) => c.name === 'retention.ms')?.value),
    }));
  }

  async topicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const meta = await this.admin.metadata({ topics: [topic] });
    const count = meta.topics.get(topic)?.partitionsCount ?? 0;
    const at = async (timestamp: bigint) => {
      const [listed] = await this.admin.listOffsets({
        topics: [{ name: topic, partitions: Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }],
      });
      return new Map((listed?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
    };
    const [low, high] = await Promise.all([at(ListOffsetTimestamps.EARLIEST), at(ListOffsetTimestamps.LATEST)]);
    return Array.from({ length: count }, (_, partition) => ({ partition, low: low.get(partition) ?? 0n, high: high.get(partition) ?? 0n }));
  }

  /** Committed offset of `groupId` per topic and partition (-1n: nothing committed). */
  async committedOffsets(groupId: string, topics: string[]): Promise<Map<string, Map<number, bigint>>> {
    const [group] = await this.admin.listConsumerGroupOffsets({ groups: [groupId] });
    const out = new Map<string, Map<number, bigint>>(topics.map((t) => [t, new Map()]));
    for (const t of group?.topics ?? []) {
      const partitions = out.get(t.name);
      if (partitions) for (const p of t.partitions) partitions.set(p.partitionIndex, p.committedOffset);
    }
    return out;
  }

  async listGroups(): Promise<string[]> {
    return [...(await this.admin.listGroups()).keys()];
  }

  async describeGroup(groupId: string): Promise<GroupDescription> {
    const group = (await this.admin.describeGroups({ groups: [groupId] })).get(groupId);
    if (!group) return { state: 'DEAD', members: [] };
    return {
      state: group.state,
      members: [...group.members.values()].map((m) => ({
        id: m.id,
        clientHost: m.clientHost,
        partitions: [...(m.assignments?.values() ?? [])].reduce((n, a) => n + a.partitions.length, 0),
      })),
    };
  }

  async deleteGroups(groups: string[]): Promise<void> {
    if (groups.length) await this.admin.deleteGroups({ groups });
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length) await this.admin.deleteTopics({ topics });
  }

  /** Deletes the records of `topic` before `offset` in each partition. */
  async deleteRecords(topic: string, partitions: { partition: number; offset: bigint }[]): Promise<void> {
    await this.admin.deleteRecords({ topics: [{ name: topic, partitions }] });
  }

  async close(): Promise<void> {
    await this.admin.close();
  }
}

/** A Kafka error response (or one of several) with this API error id, e.g. TOPIC_ALREADY_EXISTS. */
export function hasApiError(err: unknown, apiId: string): boolean {
  const e = err as { findBy?: (key: string, value: unknown) => unknown };
  return typeof e?.findBy === 'function' && Boolean(e.findBy('apiId', apiId));
}
