/**
 * Consumer throughput, per consuming subgraph, on the real bus and databases:
 *  - `handledSince`: events each subgraph's consumer recorded in its inbox since a moment (the
 *    createCustomer load), and over how many seconds: paced by the load, not a capacity;
 *  - `drainBacklog`: a backlog of N customer.updated events (each the owner's current row, so every
 *    copy stays equal to the owner) published at once; the time until each consumer has all of them
 *    in its inbox gives events/s at full speed.
 */
import { randomUUID } from 'node:crypto';
import { buildEnvelope, KafkaBus, type EventBus } from '@crm/events';
import type { TestStack } from '@crm/platform';
import { withDb } from './seed';

export const CONSUMING = ['auth', 'customer', 'sales-activity', 'opportunity', 'analytics'] as const;

export async function dbNow(stack: Pick<TestStack, 'config'>): Promise<string> {
  return withDb(stack, 'customer', async (c) => (await c.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now.toISOString());
}

export async function handledSince(stack: Pick<TestStack, 'config'>, since: string) {
  const out: Record<string, { events: number; seconds: number }> = {};
  for (const sub of CONSUMING) {
    out[sub] = await withDb(stack, sub, async (c) => {
      const r = (
        await c.query<{ n: string; s: number | null }>(
          'SELECT count(*) AS n, extract(epoch FROM max(handled_at) - min(handled_at))::float AS s FROM inbox WHERE handled_at >= $1',
          [since],
        )
      ).rows[0]!;
      return { events: Number(r.n), seconds: Number((r.s ?? 0).toFixed(2)) };
    });
  }
  return out;
}

/** `stack.bus` publishes when the bench runs in one process; a process-per-service stack gets a Kafka client of its own. */
export async function drainBacklog(stack: Pick<TestStack, 'config'> & { bus?: EventBus | { kind: string }; subgraphs?: Record<string, unknown> }, n: number) {
  const customers = await withDb(
    stack,
    'customer',
    async (c) =>
      (
        await c.query<{ id: string; name: string; assigned_rep_id: string | null; size: string | null; investment_profile: string | null }>(
          'SELECT id, name, assigned_rep_id, size, investment_profile FROM customers WHERE deleted_at IS NULL ORDER BY random() LIMIT $1',
          [n],
        )
      ).rows,
  );
  const ids: string[] = [];
  const messages = customers.map((c) => {
    const e = buildEnvelope(
      'customer',
      'customer.updated',
      c.id,
      {
        customerId: c.id,
        name: c.name,
        assignedRepId: c.assigned_rep_id,
        size: c.size,
        investmentProfile: c.investment_profile,
        changes: [],
      },
      { actorId: null, correlationId: randomUUID() },
    );
    ids.push(e.id);
    return { topic: 'customer.events', key: c.id, value: JSON.stringify(e) };
  });
  const consumers = ['sales-activity', 'opportunity', 'analytics', 'auth'].filter((s) => !stack.subgraphs || stack.subgraphs[s]);
  const own = stack.bus && 'publish' in stack.bus ? undefined : new KafkaBus(stack.config, 'bench-backlog');
  const bus = (own ?? stack.bus) as EventBus;
  const t0 = performance.now();
  for (let i = 0; i < messages.length; i += 1000) await bus.publish(messages.slice(i, i + 1000));
  await own?.close();
  const publishSeconds = (performance.now() - t0) / 1000;
  const done: Record<string, { events: number; seconds: number; eventsPerSecond: number; workingSeconds?: number; workingEventsPerSecond?: number }> = {};
  const pending = new Set(consumers);
  const deadline = Date.now() + 300_000;
  while (pending.size > 0 && Date.now() < deadline) {
    for (const sub of [...pending]) {
      const have = await withDb(stack, sub, async (c) =>
        Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM inbox WHERE event_id = ANY($1::uuid[])', [ids])).rows[0]!.n),
      );
      if (have >= ids.length) {
        const seconds = (performance.now() - t0) / 1000;
        // first to last batch: handled_at is each batch's transaction start
        const working = await withDb(stack, sub, async (c) =>
          Number(
            (await c.query<{ s: number }>('SELECT extract(epoch FROM max(handled_at) - min(handled_at))::float AS s FROM inbox WHERE event_id = ANY($1::uuid[])', [ids])).rows[0]!
              .s,
          ),
        );
        done[sub] = {
          events: ids.length,
          seconds: Number(seconds.toFixed(2)),
          eventsPerSecond: Math.round(ids.length / seconds),
          workingSeconds: Number(working.toFixed(2)),
          workingEventsPerSecond: Math.round(ids.length / Math.max(working, 0.001)),
        };
        pending.delete(sub);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const sub of pending) done[sub] = { events: ids.length, seconds: NaN, eventsPerSecond: NaN };
  return { events: ids.length, publishSeconds: Number(publishSeconds.toFixed(2)), perConsumer: done };
}
