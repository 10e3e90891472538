/**
 * Fault-suite story (real Kafka and Postgres): two writers on the same customers at the same moment.
 * `updateCustomer` and `assignCustomer` are fired together through the gateway on 20 customers, 3
 * rounds; once the customer outbox is empty and every consuming group is at lag 0, every local copy
 * (sales-activity's and opportunity's customer_refs, analytics' customer_facts) equals the owner's
 * row. On the old code each resolver built its event from the row it read before the other
 * committed, and the copies kept a state the owner never had (docs/faults.md).
 */
import { eventually } from '@crm/testing';
import { KafkaBus } from '@crm/events';
import { startTestStack, type TestStack } from '@crm/platform';

const describeWithKafka = process.env.KAFKA_BROKERS ? describe : describe.skip;

const CUSTOMERS = 20;
const ROUNDS = 3;
const SIZES = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'] as const;

describeWithKafka('two concurrent writers on one customer', () => {
  let stack: TestStack;
  jest.setTimeout(300_000);
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test(`updateCustomer and assignCustomer at once (${CUSTOMERS} customers x ${ROUNDS} rounds): every copy equals the owner`, async () => {
    const started = Date.now();
    const manager = await stack.user('MANAGER');
    const reps = [await stack.user('SALES'), await stack.user('SALES')];
    const ids: string[] = [];
    for (let i = 0; i < CUSTOMERS; i++) {
      const r = await manager.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, {
        input: { name: `Race ${i}`, assignedRepId: reps[0]!.id, size: 'SMALL' },
      });
      expect(r.errors).toBeUndefined();
      ids.push(r.data.createCustomer.id);
    }
    let errors = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const results = await Promise.all(
        ids.flatMap((id, i) => [
          manager.gql(`mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { id } }`, {
            id,
            input: { name: `Race ${i} r${round}`, size: SIZES[round % SIZES.length] },
          }),
          manager.gql(`mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }`, { id, rep: reps[round % 2]!.id }),
        ]),
      );
      errors += results.filter((r) => r.errors).length;
    }
    expect(errors).toBe(0);

    // The owner's events all sent, and every group that copies customers at lag 0.
    await eventually(async () => (await stack.sql('customer', 'SELECT 1 FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL LIMIT 1')).length === 0, { timeoutMs: 120_000 });
    const bus = stack.bus as KafkaBus;
    for (const group of ['crm-sales-activity', 'crm-opportunity', 'crm-analytics']) {
      await eventually(async () => (await bus.lag(group, ['customer.events'])).every((p) => p.lag === 0), { timeoutMs: 120_000, intervalMs: 250 });
    }

    interface Row {
      id: string;
      name: string;
      size: string | null;
      assigned_rep_id: string | null;
    }
    const owner = new Map(
      (await stack.sql<Row>('customer', 'SELECT id, name, size, assigned_rep_id FROM customers WHERE id::text = ANY(?::text[])', [`{${ids.join(',')}}`])).map((r) => [r.id, r]),
    );
    const differ = async (subgraph: string, query: string, fields: (keyof Row)[]) => {
      const rows = await stack.sql<Row>(subgraph, query, [`{${ids.join(',')}}`]);
      const copy = new Map(rows.map((r) => [r.id, r]));
      return ids.filter((id) => fields.some((f) => copy.get(id)?.[f] !== owner.get(id)![f])).length;
    };
    const drift = {
      salesActivity: await differ('sales-activity', 'SELECT id, name, assigned_rep_id FROM customer_refs WHERE id::text = ANY(?::text[])', ['name', 'assigned_rep_id']),
      opportunity: await differ('opportunity', 'SELECT id, name, assigned_rep_id FROM customer_refs WHERE id::text = ANY(?::text[])', ['name', 'assigned_rep_id']),
      analytics: await differ('analytics', 'SELECT id, size, assigned_rep_id FROM customer_facts WHERE id::text = ANY(?::text[])', ['size', 'assigned_rep_id']),
    };
    // nothing lost: every copy holds the owner's newest aggregate version of each customer
    const newest = new Map(
      (
        await stack.sql<{ key: string; v: string }>(
          'customer',
          `SELECT key, max(aggregate_version) AS v FROM outbox WHERE topic = 'customer.events' AND key = ANY(?::text[]) GROUP BY key`,
          [`{${ids.join(',')}}`],
        )
      ).map((r) => [r.key, Number(r.v)]),
    );
    const behind = async (subgraph: string, table: string) =>
      (await stack.sql<{ id: string; version: string | null }>(subgraph, `SELECT id, version FROM ${table} WHERE id::text = ANY(?::text[])`, [`{${ids.join(',')}}`])).filter(
        (r) => Number(r.version) !== newest.get(r.id),
      ).length;
    const notNewest = {
      salesActivity: await behind('sales-activity', 'customer_refs'),
      opportunity: await behind('opportunity', 'customer_refs'),
      analytics: await behind('analytics', 'customer_facts'),
    };
    // the figures docs/faults.md quotes
    console.log(
      `concurrent writers: ${CUSTOMERS} customers x ${ROUNDS} rounds, ${errors} errors, customers differing from the owner ${JSON.stringify(drift)}, copies not at the owner's newest version ${JSON.stringify(notNewest)}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(drift).toEqual({ salesActivity: 0, opportunity: 0, analytics: 0 });
    expect(notNewest).toEqual({ salesActivity: 0, opportunity: 0, analytics: 0 });
    // and the owner holds what the last writer of each kind asked for
    for (const [i, id] of ids.entries()) {
      expect(owner.get(id)).toMatchObject({ name: `Race ${i} r${ROUNDS}`, size: SIZES[ROUNDS % SIZES.length], assigned_rep_id: reps[ROUNDS % 2]!.id });
    }
  });
});
