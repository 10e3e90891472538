/**
 * The customer subgraph with auth behind the gateway: batching of customers with their reps' names
 * and of User.customers, and the federated reads that join both (moved from the customer
 * subgraph's own tests, which start that subgraph alone).
 */
import { startTestStack, type TestStack, type TestUser } from '@crm/platform';
import { create, createFor } from '../subgraphs/customer/test/helpers';

let stack: TestStack;
let manager: TestUser;
let compliance: TestUser;
let alice: TestUser; // SALES

beforeAll(async () => {
  stack = await startTestStack({ only: ['auth', 'customer'] });
  manager = await stack.user('MANAGER', 'Mia Manager');
  compliance = await stack.user('COMPLIANCE', 'Cleo Compliance');
  alice = await stack.user('SALES', 'Alice Sales');
}, 240_000); // a stack starts in seconds, slower on a loaded machine
afterAll(async () => {
  await stack?.stop();
});

/** Statements each of `subgraphs` sends on behalf of `run` (the kit leaves background work out of statementCount()). */
async function countStatements<K extends string>(stack: TestStack, subgraphs: K[], run: () => Promise<void>): Promise<Record<K, number>> {
  const before = subgraphs.map((name) => stack.subgraphs[name]!.db.statementCount());
  await run();
  return Object.fromEntries(subgraphs.map((name, i) => [name, stack.subgraphs[name]!.db.statementCount() - before[i]!])) as Record<K, number>;
}

describe('batching', () => {
  const QUERY = '{ customers(first: 50) { edges { node { id name assignedRep { name } } } } }';

  /** Statements the customer and auth subgraphs run for QUERY as the MANAGER. */
  async function measure(expected: number) {
    const raw = stack.subgraphs.customer!.db.statementCount();
    const counts = await countStatements(stack, ['customer', 'auth'], async () => {
      const r = await manager.gql(QUERY);
      expect(r.errors).toBeUndefined();
      expect(r.data.customers.edges).toHaveLength(expected);
      for (const e of r.data.customers.edges) expect(e.node.assignedRep.name).toMatch(/^Rep /);
    });
    return { ...counts, rawCustomerDelta: stack.subgraphs.customer!.db.statementCount() - raw };
  }

  test('customers(first: 50) with assignedRep { name } runs as many statements at 5 customers as at 50', async () => {
    // Runs first in this file: the MANAGER sees every customer, so these are all there are.
    const reps = await Promise.all([1, 2, 3, 4, 5].map((i) => stack.user('SALES', `Rep ${i}`)));
    for (let i = 0; i < 5; i++) await createFor(manager, reps[i]!.id, { name: `Batch ${i}` });
    const at5 = await measure(5);
    for (let i = 5; i < 50; i++) await createFor(manager, reps[i % 5]!.id, { name: `Batch ${i}` });
    const at50 = await measure(50);
    expect({ customer: at50.customer, auth: at50.auth }).toEqual({ customer: at5.customer, auth: at5.auth });
    // one page query in the customer subgraph (QUERY selects no totalCount, so nothing is counted)
    expect(at5.customer).toBe(1);

    console.log(`statements for customers(first: 50): at 5 → ${JSON.stringify(at5)}, at 50 → ${JSON.stringify(at50)}`);
  }, 240_000);

  test('totalCount is counted (one more statement) only when the selection asks for it', async () => {
    // The 50 customers of the test above are all there are.
    const counts = await countStatements(stack, ['customer'], async () => {
      const r = await manager.gql('{ customers(first: 2) { totalCount pageInfo { hasNextPage } edges { node { id } } } }');
      expect(r.errors).toBeUndefined();
      expect(r.data.customers).toMatchObject({ totalCount: 50, pageInfo: { hasNextPage: true } });
      expect(r.data.customers.edges).toHaveLength(2);
    });
    expect(counts.customer).toBe(2);
  });

  test('User.customers is batched: statements do not grow with the number of users', async () => {
    const Q = (n: number) => `{ users(role: SALES, first: ${n}) { edges { node { id customers(first: 5) { totalCount edges { node { id } } } } } } }`;
    const count = async (n: number) =>
      (
        await countStatements(stack, ['customer'], async () => {
          const r = await manager.gql(Q(n));
          expect(r.errors).toBeUndefined();
          expect(r.data.users.edges.length).toBeGreaterThan(n === 1 ? 0 : 5);
        })
      ).customer;
    const one = await count(1);
    const many = await count(7);
    expect(many).toBe(one);
  });
});

describe('federation', () => {
  test('a federated query resolves assignedRep through the auth subgraph', async () => {
    const erin = await stack.user('SALES', 'Erin Federated');
    await create(erin, { name: 'Fed Co' });
    const r = await erin.gql('{ customers { edges { node { name assignedRep { name email role } } } } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.customers.edges).toEqual([{ node: { name: 'Fed Co', assignedRep: { name: 'Erin Federated', email: erin.email, role: 'SALES' } } }]);
    const unassigned = await create(manager, { name: 'Orphan Inc' });
    const o = await manager.gql(`query($id: ID!) { customer(id: $id) { assignedRep { name } } }`, { id: unassigned.id });
    expect(o.data.customer.assignedRep).toBeNull();
  });

  test("User.customers: own list for SALES, empty for another user; everyone's for MANAGER", async () => {
    const frank = await stack.user('SALES', 'Frank Owner');
    const c1 = await create(frank, { name: 'Frank 1' });
    const c2 = await create(frank, { name: 'Frank 2' });
    const Q = `query($id: ID!) { user(id: $id) { id customers(first: 10) { totalCount edges { node { id name } } } } }`;
    const own = await frank.gql(Q, { id: frank.id });
    expect(own.data.user.customers.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([c2.id, c1.id]);
    const peek = await alice.gql(Q, { id: frank.id });
    expect(peek.errors).toBeUndefined();
    expect(peek.data.user.customers).toEqual({ totalCount: 0, edges: [] });
    for (const u of [manager, compliance]) expect((await u.gql(Q, { id: frank.id })).data.user.customers.totalCount).toBe(2);
  });
});
