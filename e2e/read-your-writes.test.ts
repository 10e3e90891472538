/**
 * What a user just wrote is usable at once in every domain: a customer created a moment ago can
 * get an approval request, a meeting and a task in the same breath (no retry, no wait), and a
 * user made a SALES rep a moment ago can be assigned a customer. The local copies lag the owner;
 * the read-through to the owner covers the gap (packages/runtime/src/peers.ts).
 */
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
