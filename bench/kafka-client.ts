/**
 * The Kafka client's share of the event path, on the real platform (one process, real Postgres and
 * Kafka): EVENTS customer.updated events (each an existing customer's current row) staged in the
 * customer subgraph's outbox in one transaction, then
 *  - relay rows/s: the outbox relay publishes them (batches of 200, acks=all) until none is unsent;
 *  - consumer events/s: the time from the commit until each consuming subgraph has all of them in
 *    its inbox (consumers start as soon as the first rows are out, so this includes the relay).
 * ROUNDS rounds; the figures of each are appended to bench/results/kafka-client.md with the load.
 *
 *   LABEL=kafkajs npx tsx bench/kafka-client.ts      (POSTGRES_URL, KAFKA_BROKERS from the environment)
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { buildEnvelope } from '@crm/events';
import { startTestStack } from '@crm/platform';
import { withDb, seedBulk } from './crm/seed';

const EVENTS = Number(process.env.EVENTS ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const LABEL = process.env.LABEL ?? 'unlabelled';
const CONSUMERS = ['sales-activity', 'opportunity', 'analytics', 'auth'];
const OUT = join(__dirname, 'results/kafka-client.md');

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (!process.env.KAFKA_BROKERS || !process.env.POSTGRES_URL) throw new Error('set KAFKA_BROKERS and POSTGRES_URL');
  const stack = await startTestStack({ env: { OUTBOX_POLL_MS: '500', DATABASE_POOL_MAX: '4' } });
  const rows: string[] = [];
  try {
    const admin = await stack.admin();
    await seedBulk(stack, { customers: EVENTS, reps: [admin.id], managers: [admin.id] });
    for (let round = 1; round <= ROUNDS; round++) {
      const before = load();
      const ids: string[] = [];
      const t0 = await withDb(stack, 'customer', async (c) => {
        const customers = (
          await c.query<{ id: string; name: string; assigned_rep_id: string | null; size: string | null; investment_profile: string | null }>(
            'SELECT id, name, assigned_rep_id, size, investment_profile FROM customers WHERE deleted_at IS NULL ORDER BY random() LIMIT $1',
            [EVENTS],
          )
        ).rows;
        await c.query('BEGIN');
        for (let i = 0; i < customers.length; i += 1000) {
          const chunk = customers.slice(i, i + 1000).map((r) => {
            const e = buildEnvelope(
              'customer',
              'customer.updated',
              r.id,
              {
                customerId: r.id,
                name: r.name,
                assignedRepId: r.assigned_rep_id,
                size: r.size,
                investmentProfile: r.investment_profile,
                changes: [],
              },
              { actorId: admin.id },
            );
            ids.push(e.id);
            return [e.id, 'customer.events', r.id, e.type, JSON.stringify(e)];
          });
          await c.query(
            `INSERT INTO outbox (id, topic, key, type, envelope, created_at, attempts) SELECT * , now(), 0 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])`,
            [0, 1, 2, 3, 4].map((k) => chunk.map((row) => row[k])),
          );
        }
        await c.query('COMMIT');
        return performance.now();
      });
      let relaySeconds = NaN;
      const consumers: Record<string, number> = {};
      const deadline = Date.now() + 600_000;
      while ((Number.isNaN(relaySeconds) || Object.keys(consumers).length < CONSUMERS.length) && Date.now() < deadline) {
        if (Number.isNaN(relaySeconds)) {
          const unsent = await withDb(stack, 'customer', async (c) =>
            Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL')).rows[0]!.n),
          );
          if (unsent === 0) relaySeconds = (performance.now() - t0) / 1000;
        }
        for (const sub of CONSUMERS.filter((s) => !(s in consumers))) {
          const have = await withDb(stack, sub, async (c) =>
            Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM inbox WHERE event_id = ANY($1::uuid[])', [ids])).rows[0]!.n),
          );
          if (have >= ids.length) consumers[sub] = (performance.now() - t0) / 1000;
        }
        await sleep(100);
      }
      const perSecond = (s: number | undefined) => (s ? Math.round(ids.length / s) : 'timeout');
      const row = `| ${new Date().toISOString()} | ${LABEL} | ${round} | ${ids.length} | ${relaySeconds.toFixed(2)} s · ${perSecond(relaySeconds)} | ${CONSUMERS.map((s) => `${s} ${perSecond(consumers[s])}`).join(', ')} | ${before} → ${load()} |`;
      console.log(row);
      rows.push(row);
    }
  } finally {
    await stack.stop();
  }
  if (!existsSync(OUT)) {
    writeFileSync(
      OUT,
      [
        '# The Kafka client on the event path (bench/kafka-client.ts)',
        '',
        'EVENTS customer.updated events staged in the customer outbox in one transaction; relay = time until none is unsent (rows/s);',
        'consumers = time from the commit until each consumer has all of them in its inbox (events/s, includes the relay).',
        'One Node process (whole platform), real Postgres and Kafka (3 partitions), shared 2-core machine: load average (1/5/15 min) before → after each round.',
        '',
        '| date | client | round | events | relay | consumers (events/s) | load |',
        '|---|---|---|---|---|---|---|',
        '',
      ].join('\n'),
    );
  }
  appendFileSync(OUT, `${rows.join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
