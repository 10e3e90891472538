/**
 * What a user just wrote is usable at once in every domain: a customer created a moment ago can
 * get an approval request, a meeting and a task in the same breath (no retry, no wait), and a
 * user made a SALES rep a moment ago can be assigned a customer. The local copies lag the owner;
 * the read-through to the owner covers the gap (packages/runtime/src/peers.ts). The same holds the
 * other way: a customer deleted or reassigned a moment ago is refused at once where the copy still
 * says otherwise.
 */
import { eventually } from '@crm/testing';
import { startTestStack, type TestStack } from '@crm/platform';
import { runRounds } from '../bench/read-your-writes';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ env: { RATE_LIMIT_ENABLED: 'false' } });
});
afterAll(async () => {
  await stack?.stop();
});

test('create a customer, then at once request approval, record a meeting, create a task: every round succeeds', async () => {
  const result = await runRounds(20, stack);
  expect(result.failures).toEqual([]);
  expect(result.customer).toBe(20);
  expect(result.rep).toBe(2);
});

test("an unknown customer is still NOT_FOUND after asking the owner, and a SALES rep cannot name another rep's customer", async () => {
  const [a, b] = [await stack.user('SALES'), await stack.user('SALES')];
  const unknown = await a.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, {
    input: { customerId: '6f1c2b1e-0000-4000-8000-000000000000', title: 'x' },
  });
  expect(unknown.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND', field: 'customerId' });
  const created = await a.gql(`mutation { createCustomer(input: { name: "Mine" }) { id } }`);
  const customerId = created.data.createCustomer.id;
  const theirs = await b.gql(`mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }`, { input: { title: 'steal', customerId } });
  expect(theirs.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND', field: 'customerId' });
  const rows = await stack.sql('sales-activity', "SELECT count(*)::int AS n FROM tasks WHERE customer_id = ? AND title = 'steal'", [customerId]);
  expect(rows[0]).toEqual({ n: 0 });
});

/**
 * Runs `work` while the event consumers of `subgraphs` are held: a transaction keeps a lock on each
 * one's inbox, which every consumer writes first, so their copies cannot catch up meanwhile.
 */
async function withConsumersHeld<T>(subgraphs: string[], work: () => Promise<T>): Promise<T> {
  const holds = await Promise.all(
    subgraphs.map(async (name) => {
      const tx = await stack.subgraphs[name]!.fork().getConnection().getKnex().transaction();
      await tx.raw('LOCK TABLE inbox IN SHARE ROW EXCLUSIVE MODE');
      return tx;
    }),
  );
  try {
    return await work();
  } finally {
    await Promise.all(holds.map((tx) => tx.rollback()));
  }
}

test('a customer deleted or reassigned a moment ago is refused at once where the copy has not caught up', async () => {
  const [manager, a, b] = [await stack.user('MANAGER'), await stack.user('SALES'), await stack.user('SALES')];
  const create = async (name: string) => (await a.gql('mutation($n: String!) { createCustomer(input: { name: $n }) { id } }', { n: name })).data.createCustomer.id as string;
  const [gone, moved] = [await create('Soon deleted'), await create('Soon reassigned')];
  // both copies know both customers as a's (so it is the copy, not a missing row, that is out of date below)
  for (const subgraph of ['sales-activity', 'opportunity'])
    await eventually(async () => {
      const rows = await stack.sql<{ n: number }>(subgraph, 'SELECT count(*)::int AS n FROM customer_refs WHERE id IN (?, ?) AND assigned_rep_id = ? AND NOT deleted', [
        gone,
        moved,
        a.id,
      ]);
      return rows[0]!.n === 2;
    });
  const TASK = 'mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }';
  const MEETING = 'mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }';
  const APPROVAL = 'mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }';
  const refused = (r: { errors?: { extensions?: Record<string, unknown> }[] }) => r.errors?.[0]?.extensions;
  await withConsumersHeld(['sales-activity', 'opportunity'], async () => {
    expect((await manager.gql('mutation($id: ID!) { deleteCustomer(id: $id) { id } }', { id: gone })).errors).toBeUndefined();
    expect((await manager.gql('mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }', { id: moved, rep: b.id })).errors).toBeUndefined();
    // the deleted customer, for anyone
    for (const [who, query, input] of [
      [a, TASK, { title: 'late', customerId: gone }],
      [a, MEETING, { customerId: gone, startsAt: '2027-01-01T10:00:00Z', summary: 'late' }],
      [a, APPROVAL, { customerId: gone, title: 'late' }],
      [manager, TASK, { title: 'late', customerId: gone }],
    ] as const)
      expect(refused(await who.gql(query, { input }))).toMatchObject({ code: 'NOT_FOUND', field: 'customerId' });
    // the reassigned customer: no longer a's, already b's
    expect(refused(await a.gql(TASK, { input: { title: 'late', customerId: moved } }))).toMatchObject({ code: 'NOT_FOUND', field: 'customerId' });
    expect(refused(await a.gql(APPROVAL, { input: { customerId: moved, title: 'late' } }))).toMatchObject({ code: 'NOT_FOUND', field: 'customerId' });
    expect((await b.gql(TASK, { input: { title: 'mine now', customerId: moved } })).errors).toBeUndefined();
    expect((await b.gql(APPROVAL, { input: { customerId: moved, title: 'mine now' } })).errors).toBeUndefined();
  });
  const late = await stack.sql<{ n: number }>('sales-activity', "SELECT count(*)::int AS n FROM tasks WHERE title = 'late' AND customer_id IN (?, ?)", [gone, moved]);
  expect(late[0]!.n).toBe(0);
  const lateRequests = await stack.sql<{ n: number }>('opportunity', "SELECT count(*)::int AS n FROM approval_requests WHERE title = 'late'");
  expect(lateRequests[0]!.n).toBe(0);
});

test('a rep given another role a moment ago can no longer be assigned customers, before the customer directory catches up', async () => {
  const admin = await stack.admin();
  const [manager, rep] = [await stack.user('MANAGER'), await stack.user('SALES')];
  const customerId = (await manager.gql('mutation { createCustomer(input: { name: "Unassigned for now" }) { id } }')).data.createCustomer.id as string;
  // the customer subgraph's directory knows the rep as an active SALES rep
  await eventually(async () => (await stack.sql<{ n: number }>('customer', 'SELECT count(*)::int AS n FROM reps WHERE id = ? AND active', [rep.id]))[0]!.n === 1);
  await withConsumersHeld(['customer'], async () => {
    expect((await admin.gql('mutation($id: ID!) { updateUser(id: $id, input: { role: MANAGER }) { role } }', { id: rep.id })).data?.updateUser.role).toBe('MANAGER');
    const assigned = await manager.gql('mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }', { id: customerId, rep: rep.id });
    expect(assigned.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'repId' });
  });
  const rows = await stack.sql<{ assigned_rep_id: string | null }>('customer', 'SELECT assigned_rep_id FROM customers WHERE id = ?', [customerId]);
  expect(rows).toEqual([{ assigned_rep_id: null }]);
});
