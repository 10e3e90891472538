/**
 * With the real customer subgraph: creating a customer opens the rep's first-contact task and fills
 * the directory; one query joins customer fields with its meetings and tasks; deleting the customer
 * hides its activities (saga step); reassigning moves who may use it.
 */
import { eventually } from '@crm/testing';
import { errorCode as code, startTestStack, type TestStack, type TestUser } from '@crm/platform';
import { CREATE_TASK, RECORD_MEETING } from '../subgraphs/sales-activity/test/helpers';

const sql = (stack: TestStack, query: string, params: unknown[]) => stack.sql('sales-activity', query, params);

let stack: TestStack;
let rep: TestUser;
let rep2: TestUser;
let manager: TestUser;

beforeAll(async () => {
  stack = await startTestStack({ only: ['auth', 'customer', 'sales-activity'] });
  rep = await stack.user('SALES', 'Rep One');
  rep2 = await stack.user('SALES', 'Rep Two');
  manager = await stack.user('MANAGER');
}, 300_000); // a loaded shared machine can take minutes to start a stack
afterAll(async () => {
  await stack?.stop();
});

const CREATE_CUSTOMER = `mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id name assignedRep { id } } }`;

test('customer created → first-contact task, directory, meetings and tasks joined with customer fields; reassign; delete hides', async () => {
  // the customer subgraph's rep directory fills from user.created: retry until it knows the rep
  const customer = await eventually(async () => {
    const r = await manager.gql(CREATE_CUSTOMER, { input: { name: 'Vandelay Industries', assignedRepId: rep.id } });
    if (r.errors) throw new Error(JSON.stringify(r.errors));
    return r.data.createCustomer as { id: string; name: string };
  });
  const Q = `query($id: ID!) { customer(id: $id) { id name assignedRep { id } meetings { totalCount } tasks { totalCount edges { node { title priority assignee { id name } customer { name } } } } } }`;
  const seen = await eventually(async () => {
    const r = await rep.gql(Q, { id: customer.id });
    return r.data?.customer?.tasks.totalCount === 1 ? r.data.customer : null;
  });
  expect(seen.tasks.edges[0].node).toEqual({
    title: 'First contact: Vandelay Industries',
    priority: 'HIGH',
    assignee: { id: rep.id, name: 'Rep One' },
    customer: { name: 'Vandelay Industries' },
  });

  // the directory knows the customer: the rep may record a meeting and create a task for it
  const meeting = await eventually(async () => {
    const r = await rep.gql(RECORD_MEETING, { input: { customerId: customer.id, startsAt: '2026-11-12T09:00:00Z', summary: 'Latex talk' } });
    return r.errors ? null : r.data.recordMeeting;
  });
  expect(meeting.customer.id).toBe(customer.id);
  expect((await rep.gql(CREATE_TASK, { input: { title: 'Send samples', customerId: customer.id } })).errors).toBeUndefined();
  const both = await rep.gql(`query($id: ID!) { meeting(id: $id) { customer { name meetings { totalCount } tasks { totalCount } } rep { name } } }`, { id: meeting.id });
  expect(both.data.meeting).toEqual({ customer: { name: 'Vandelay Industries', meetings: { totalCount: 1 }, tasks: { totalCount: 2 } }, rep: { name: 'Rep One' } });
  // rep2 sees none of it
  expect(code(await rep2.gql(RECORD_MEETING, { input: { customerId: customer.id, startsAt: '2026-11-12T09:00:00Z', summary: 'x' } }))).toBe('NOT_FOUND');

  // reassigned to rep2: the directory follows
  const moved = await manager.gql(`mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }`, { id: customer.id, rep: rep2.id });
  expect(moved.errors).toBeUndefined();
  await eventually(async () => !(await rep2.gql(RECORD_MEETING, { input: { customerId: customer.id, startsAt: '2026-11-13T09:00:00Z', summary: 'Hello' } })).errors);
  expect(code(await rep.gql(CREATE_TASK, { input: { title: 'x', customerId: customer.id } }))).toBe('NOT_FOUND');

  // deleted: the customer-deletion saga's sales-activity step hides its meetings and tasks
  const del = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customer.id });
  expect(del.errors).toBeUndefined();
  const sagaId = del.data.deleteCustomer.id as string;
  await eventually(
    async () => (await sql(stack, `select 1 from outbox where type = 'sales-activity.saga_step' and key = ? and envelope->'data'->>'status' = 'DONE'`, [sagaId])).length === 1,
  );
  const hidden = await manager.gql(`query($id: ID!) { meeting(id: $id) { id } myTasks { totalCount } }`, { id: meeting.id });
  expect(hidden.data.meeting).toBeNull();
  const repTasks = await rep.gql(`{ myTasks { edges { node { customer { id } } } } }`);
  expect(repTasks.data.myTasks.edges.filter((e: any) => e.node.customer?.id === customer.id)).toEqual([]);
  expect(code(await manager.gql(CREATE_TASK, { input: { title: 'x', customerId: customer.id } }))).toBe('NOT_FOUND');
});
