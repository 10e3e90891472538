/**
 * The CRM story through the gateway: a SALES rep works a customer end to end, a MANAGER approves,
 * one query returns the customer with its rep, meetings, tasks and approvals, another rep sees none
 * of it, and the SQL a federated list query costs does not grow with the number of customers.
 */
import { dataOf, startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
let rep: TestUser;
let otherRep: TestUser;
let manager: TestUser;
beforeAll(async () => {
  stack = await startTestStack();
  [rep, otherRep, manager] = [await stack.user('SALES', 'Rita Rep'), await stack.user('SALES', 'Oscar Other'), await stack.user('MANAGER', 'Mia Manager')];
});
afterAll(async () => {
  await stack?.stop();
});

const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

const CUSTOMER_360 = `query($id: ID!) {
  customer(id: $id) {
    id name
    assignedRep { id name email }
    meetings { totalCount edges { node { summary rep { name } } } }
    tasks { totalCount edges { node { title status completedAt assignee { name } } } }
    approvalRequests { title status amount requester { name } approver { name } }
  }
}`;

async function createCustomer(user: TestUser, name: string): Promise<string> {
  const r = await user.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, {
    input: { name, email: `${name.toLowerCase().replace(/\W+/g, '.')}@acme.test`, size: 'MEDIUM' },
  });
  if (!r.data?.createCustomer) throw new Error(JSON.stringify(r.errors));
  return r.data.createCustomer.id;
}

test('a SALES rep works a customer end to end; a MANAGER approves; one query shows it all', async () => {
  const customerId = await createCustomer(rep, 'Acme Industries');

  // usable at once in sales-activity and opportunity (no wait for customer.created)
  const meeting = dataOf(
    await rep.gql(`mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id summary } }`, {
      input: { customerId, startsAt: new Date().toISOString(), summary: 'Kick-off call', nextAction: 'Send proposal' },
    }),
    'recordMeeting',
  );
  expect(meeting.summary).toBe('Kick-off call');

  const task = await rep.gql(`mutation($input: CreateTaskInput!) { createTask(input: $input) { id status } }`, {
    input: { title: 'Send proposal', customerId, priority: 'HIGH', dueAt: new Date(Date.now() + 86_400_000).toISOString() },
  });
  expect(task.data.createTask.status).toBe('TODO');
  const done = await rep.gql(`mutation($id: ID!) { completeTask(id: $id) { status completedAt } }`, { id: task.data.createTask.id });
  expect(done.data.completeTask.status).toBe('COMPLETED');
  expect(done.data.completeTask.completedAt).toBeTruthy();

  const request = dataOf(
    await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id status } }`, { input: { customerId, title: 'Discount 10%', amount: 12000 } }),
    'requestApproval',
  );
  expect(request.status).toBe('PENDING');
  const approved = await manager.gql(`mutation($id: ID!) { approveRequest(id: $id, comment: "ok") { status approver { name } decidedAt } }`, { id: request.id });
  expect(approved.errors).toBeUndefined();
  expect(approved.data.approveRequest).toMatchObject({ status: 'APPROVED', approver: { name: 'Mia Manager' } });

  // One round trip across all five subgraphs.
  const view = await manager.gql(CUSTOMER_360, { id: customerId });
  expect(view.errors).toBeUndefined();
  const c = view.data.customer;
  expect(c.assignedRep).toMatchObject({ id: rep.id, name: 'Rita Rep' });
  expect(c.meetings.totalCount).toBe(1);
  expect(c.meetings.edges[0].node).toMatchObject({ summary: 'Kick-off call', rep: { name: 'Rita Rep' } });
  const titles = c.tasks.edges.map((e: { node: { title: string } }) => e.node.title);
  expect(titles).toContain('Send proposal');
  expect(c.tasks.edges.find((e: { node: { title: string } }) => e.node.title === 'Send proposal').node).toMatchObject({ status: 'COMPLETED', assignee: { name: 'Rita Rep' } });
  expect(c.approvalRequests).toEqual([{ title: 'Discount 10%', status: 'APPROVED', amount: 12000, requester: { name: 'Rita Rep' }, approver: { name: 'Mia Manager' } }]);

  // The rep sees the same through their own token.
  const own = await rep.gql(CUSTOMER_360, { id: customerId });
  expect(own.data.customer.approvalRequests).toHaveLength(1);

  // Another rep sees none of it: not the customer, not its meeting, task or request.
  const other = await otherRep.gql(CUSTOMER_360, { id: customerId });
  expect(other.data?.customer ?? null).toBeNull();
  const list = await otherRep.gql(`{ customers(first: 100) { totalCount edges { node { id } } } }`);
  expect(list.data.customers.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(customerId);
  const byId = await otherRep.gql(`query($t: ID!, $m: ID!, $a: ID!) { task(id: $t) { title } meeting(id: $m) { summary } approvalRequest(id: $a) { title } }`, {
    t: task.data.createTask.id,
    m: meeting.id,
    a: request.id,
  });
  expect(byId.data?.task ?? null).toBeNull();
  expect(byId.data?.meeting ?? null).toBeNull();
  expect(byId.data?.approvalRequest ?? null).toBeNull();
  const change = await otherRep.gql(`mutation($id: ID!) { updateCustomer(id: $id, input: { name: "Hijacked" }) { name } }`, { id: customerId });
  expect(['NOT_FOUND', 'FORBIDDEN']).toContain(code(change));
});

test('the SQL a federated customer list costs does not grow from 5 to 50 customers', async () => {
  const seller = await stack.user('SALES', 'Bulk Seller');
  const LIST = `{ customers(first: 50) { edges { node { id assignedRep { name } meetings { totalCount } tasks { edges { node { title } } } approvalRequests { status } } } } }`;
  const statements = async () => {
    const total = () => Object.values(stack.subgraphs).reduce((n, s) => n + s.db.statementCount(), 0);
    const before = total();
    const r = await seller.gql(LIST);
    expect(r.errors).toBeUndefined();
    return { count: total() - before, rows: r.data.customers.edges.length };
  };
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await createCustomer(seller, `Five ${i}`));
  // each customer gets a meeting and a task, so every nested field has rows to fetch
  const addActivity = async (id: string) => {
    dataOf(
      await seller.gql(`mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }`, {
        input: { customerId: id, startsAt: new Date().toISOString(), summary: 'Visit' },
      }),
      'recordMeeting',
    );
  };
  for (const id of ids) await addActivity(id);
  const at5 = await statements();
  expect(at5.rows).toBe(5);
  for (let i = 5; i < 50; i++) ids.push(await createCustomer(seller, `Fifty ${i}`));
  for (const id of ids.slice(5)) await addActivity(id);
  const at50 = await statements();
  expect(at50.rows).toBe(50);
  console.log(`statements for the federated customer list: 5 customers → ${at5.count}, 50 customers → ${at50.count}`);
  expect(at50.count).toBe(at5.count);
});
