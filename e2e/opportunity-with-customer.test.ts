/**
 * Opportunity together with the real customer subgraph: the local directory fills from the
 * customer subgraph's events, Customer fields join across subgraphs, and the customer-deletion
 * saga either cancels pending requests or is refused and compensated (customer restored).
 */
import { eventually } from '@crm/testing';
import { startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
let sales: TestUser;
let manager: TestUser;

beforeAll(async () => {
  stack = await startTestStack({ only: ['auth', 'customer', 'opportunity'], env: { RATE_LIMIT_POINTS: '1000000' } });
  sales = await stack.user('SALES');
  manager = await stack.user('MANAGER');
}, 240_000); // migrations on a busy machine are slow
afterAll(async () => {
  await stack?.stop();
}, 60_000);

const REQUEST = `mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id status customer { id name assignedRep { id } } } }`;
const code = (r: { errors?: { extensions?: Record<string, unknown> }[] }) => r.errors?.[0]?.extensions?.code;

async function createCustomer(name: string): Promise<string> {
  const r = await sales.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, { input: { name } });
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data.createCustomer.id;
}

/** Requests approval once the customer has reached opportunity's directory (event latency). */
async function requestWhenKnown(user: TestUser, customerId: string, title: string) {
  const r = await eventually(async () => {
    const res = await user.gql(REQUEST, { input: { customerId, title } });
    if (code(res) === 'NOT_FOUND') return null;
    return res;
  });
  expect(r.errors).toBeUndefined();
  return r.data.requestApproval as { id: string; status: string; customer: { id: string; name: string; assignedRep: { id: string } } };
}

test('a customer created in the customer subgraph can carry approval requests; fields join across subgraphs', async () => {
  const customerId = await createCustomer('Joined Corp');
  const req = await requestWhenKnown(sales, customerId, 'Joined discount');
  expect(req.customer).toEqual({ id: customerId, name: 'Joined Corp', assignedRep: { id: sales.id } });

  const c = await sales.gql(`query($id: ID!) { customer(id: $id) { name approvalRequests { id title requester { id } } pending: approvalRequests(status: PENDING) { id } } }`, {
    id: customerId,
  });
  expect(c.errors).toBeUndefined();
  expect(c.data.customer).toEqual({ name: 'Joined Corp', approvalRequests: [{ id: req.id, title: 'Joined discount', requester: { id: sales.id } }], pending: [{ id: req.id }] });

  // another SALES rep sees neither the customer nor its requests
  const other = await stack.user('SALES');
  expect((await other.gql(`query($id: ID!) { approvalRequest(id: $id) { id } }`, { id: req.id })).data.approvalRequest).toBeNull();
  expect(code(await other.gql(REQUEST, { input: { customerId, title: 'not mine' } }))).toBe('NOT_FOUND');
});

test('deleteCustomer: pending requests are cancelled', async () => {
  const customerId = await createCustomer('To Delete');
  const req = await requestWhenKnown(sales, customerId, 'pending');
  const del = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customerId });
  expect(del.errors).toBeUndefined();
  await eventually(async () => (await manager.gql(`query($id: ID!) { approvalRequest(id: $id) { status } }`, { id: req.id })).data.approvalRequest.status === 'CANCELLED');
  const again = await manager.gql(REQUEST, { input: { customerId, title: 'after delete' } });
  expect(code(again)).toBe('NOT_FOUND');
});

test('deleteCustomer with a recent approval: opportunity refuses, the customer is restored, nothing is cancelled', async () => {
  const customerId = await createCustomer('Protected');
  const approved = await requestWhenKnown(sales, customerId, 'big deal');
  expect((await manager.gql(`mutation($id: ID!) { approveRequest(id: $id) { status } }`, { id: approved.id })).data.approveRequest.status).toBe('APPROVED');
  const pending = await requestWhenKnown(sales, customerId, 'still pending');

  const del = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customerId });
  expect(del.errors).toBeUndefined();
  // compensation: the customer subgraph restores the customer on the REFUSED step
  await eventually(async () => (await sales.gql(`query($id: ID!) { customer(id: $id) { id } }`, { id: customerId })).data?.customer?.id === customerId);
  // ... and opportunity's directory follows (customer.restored), so new requests work again
  const after = await requestWhenKnown(sales, customerId, 'after restore');
  expect(after.status).toBe('PENDING');
  const status = async (id: string) => (await manager.gql(`query($id: ID!) { approvalRequest(id: $id) { status } }`, { id })).data.approvalRequest.status;
  expect(await status(pending.id)).toBe('PENDING');
  expect(await status(approved.id)).toBe('APPROVED');
});
