/**
 * The cross-domain sagas end to end through the gateway, on whichever bus the environment gives
 * (real Kafka in CI): user deletion, customer deletion with its compensation, onboarding, approvals,
 * and reports that follow the events.
 */
import { eventually } from '@crm/testing';
import { dataOf, startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
let admin: TestUser;
let manager: TestUser;
beforeAll(async () => {
  stack = await startTestStack();
  admin = await stack.admin();
  manager = await stack.user('MANAGER', 'Mona Manager');
});
afterAll(async () => {
  await stack?.stop();
});

const SAGA = `query($id: ID!) { saga(id: $id) { id type status subjectId startedAt endedAt steps { name status detail } } }`;

async function createCustomer(user: TestUser, name: string, assignedRepId?: string): Promise<string> {
  const input: Record<string, unknown> = { name };
  if (assignedRepId) input.assignedRepId = assignedRepId;
  const r = dataOf(await user.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, { input }), 'createCustomer');
  return r.id;
}

const sagaEnds = (id: string, status: string) =>
  eventually(
    async () => {
      const r = await admin.gql(SAGA, { id });
      return r.data?.saga?.status === status ? r.data.saga : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );

test('deleting a SALES user reassigns their customers, removes their open tasks, cancels their pending requests', async () => {
  const leaving = await stack.user('SALES', 'Lea Leaving');
  const staying = await stack.user('SALES', 'Sam Staying');
  // only reps an ADMIN or MANAGER approved receive other reps' customers
  expect((await admin.gql(`mutation($id: ID!) { approveUser(id: $id) { approved } }`, { id: staying.id })).data.approveUser.approved).toBe(true);
  const customerId = await createCustomer(leaving, 'Globex');
  const task = dataOf(await leaving.gql(`mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }`, { input: { title: 'Call Globex', customerId } }), 'createTask');
  const request = dataOf(
    await leaving.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title: 'Bundle deal', amount: 500 } }),
    'requestApproval',
  );
  // the customer subgraph must know Sam as an active rep before the deletion
  dataOf(
    await manager.gql(`mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { id } }`, {
      id: await createCustomer(manager, 'Probe', staying.id).catch(() => ''),
      rep: staying.id,
    }),
    'assignCustomer',
  );

  const del = await admin.gql(`mutation($id: ID!) { deleteUser(id: $id) { id type status subjectId } }`, { id: leaving.id });
  expect(del.errors).toBeUndefined();
  const saga = await sagaEnds(del.data.deleteUser.id, 'COMPLETED');
  expect(saga).toMatchObject({ type: 'user-deletion', subjectId: leaving.id });
  expect(saga.steps.map((s: { name: string }) => s.name)).toEqual(
    expect.arrayContaining([
      'auth.deactivate-user',
      'customer.reassign-customers',
      'sales-activity.remove-activities',
      'opportunity.cancel-requests',
      'analytics.archive-notifications',
    ]),
  );
  expect(saga.endedAt).toBeTruthy();

  const view = await admin.gql(`query($c: ID!, $t: ID!, $a: ID!) { customer(id: $c) { assignedRep { id } } task(id: $t) { status } approvalRequest(id: $a) { status } }`, {
    c: customerId,
    t: task.id,
    a: request.id,
  });
  expect(view.data.customer.assignedRep.id).toBe(staying.id);
  expect(view.data.task?.status ?? 'REMOVED').not.toMatch(/TODO|IN_PROGRESS/);
  expect(view.data.approvalRequest.status).toBe('CANCELLED');
});

test('deleting a customer with a recent APPROVED request is refused and compensated: the customer is back', async () => {
  const rep = await stack.user('SALES', 'Cara Comp');
  const customerId = await createCustomer(rep, 'Initech');
  const meeting = dataOf(
    await rep.gql(`mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }`, { input: { customerId, startsAt: new Date().toISOString(), summary: 'Demo' } }),
    'recordMeeting',
  );
  const request = dataOf(
    await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title: 'Pilot', amount: 900 } }),
    'requestApproval',
  );
  expect((await manager.gql(`mutation($id: ID!) { approveRequest(id: $id) { status } }`, { id: request.id })).data.approveRequest.status).toBe('APPROVED');

  const del = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id type } }`, { id: customerId });
  expect(del.errors).toBeUndefined();
  await sagaEnds(del.data.deleteCustomer.id, 'COMPENSATED');
  // steps come from several topics, so they may land in any order: wait for the refusal and both compensations
  const wanted = [
    ['opportunity.cancel-requests', 'REFUSED'],
    ['customer.restore', 'COMPENSATED'],
    ['sales-activity.restore-activities', 'COMPENSATED'],
  ];
  const saga = await eventually(async () => {
    const r = (await admin.gql(SAGA, { id: del.data.deleteCustomer.id })).data?.saga;
    const has = (name: string, status: string) => r?.steps.some((s: { name: string; status: string }) => s.name === name && s.status === status);
    return wanted.every(([name, status]) => has(name!, status!)) ? r : undefined;
  });
  expect(saga).toMatchObject({ type: 'customer-deletion', status: 'COMPENSATED' });
  expect(saga.steps).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ name: 'customer.restore', status: 'COMPENSATED' }),
      expect.objectContaining({ name: 'sales-activity.restore-activities', status: 'COMPENSATED' }),
    ]),
  );

  const back = await eventually(async () => {
    const r = await rep.gql(`query($id: ID!) { customer(id: $id) { id name meetings { edges { node { id } } } } }`, { id: customerId });
    return r.data?.customer?.meetings.edges.length === 1 ? r.data.customer : undefined;
  });
  expect(back).toMatchObject({ id: customerId, name: 'Initech' });
  expect(back.meetings.edges[0].node.id).toBe(meeting.id);
  // the manager who asked for the deletion is told why it did not happen
  const told = await eventually(async () => {
    const r = await manager.gql(`{ myNotifications(first: 50) { edges { node { type title entityId } } } }`);
    return r.data?.myNotifications.edges.find((e: { node: { type: string } }) => e.node.type === 'SYSTEM');
  });
  expect(told.node.title).toBeTruthy();
});

test('deleting a customer without recent approvals completes and hides it everywhere', async () => {
  const rep = await stack.user('SALES', 'Dan Delete');
  const customerId = await createCustomer(rep, 'Umbrella');
  const request = dataOf(
    await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title: 'Pending one' } }),
    'requestApproval',
  );
  const del = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customerId });
  await sagaEnds(del.data.deleteCustomer.id, 'COMPLETED');
  const r = await manager.gql(`query($id: ID!, $a: ID!) { customer(id: $id) { id } approvalRequest(id: $a) { status } }`, { id: customerId, a: request.id });
  expect(r.data.customer).toBeNull();
  expect(r.data.approvalRequest.status).toBe('CANCELLED');
});

test('onboarding and approvals: first-contact task and notifications follow the events', async () => {
  const rep = await stack.user('SALES', 'Olga Onboard');
  const customerId = await createCustomer(rep, 'Hooli');
  const firstContact = await eventually(async () => {
    const r = await rep.gql(`{ myTasks(first: 50) { edges { node { title dueAt priority customer { id } } } } }`);
    return r.data?.myTasks.edges.find((e: { node: { title: string } }) => e.node.title.startsWith('First contact'));
  });
  expect(firstContact.node.customer.id).toBe(customerId);
  const due = new Date(firstContact.node.dueAt).getTime() - Date.now();
  expect(due).toBeGreaterThan(86_400_000);
  expect(due).toBeLessThanOrEqual(2 * 86_400_000);
  await eventually(async () =>
    (await rep.gql(`{ myNotifications { edges { node { type } } } }`)).data?.myNotifications.edges.some((e: { node: { type: string } }) => e.node.type === 'CUSTOMER_ASSIGNED'),
  );

  const request = dataOf(
    await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title: 'Onboarding discount' } }),
    'requestApproval',
  );
  await eventually(async () =>
    (await manager.gql(`{ myNotifications { edges { node { type entityId } } } }`)).data?.myNotifications.edges.some(
      (e: { node: { type: string; entityId: string } }) => e.node.type === 'APPROVAL_REQUESTED' && e.node.entityId === request.id,
    ),
  );
  await manager.gql(`mutation($id: ID!) { approveRequest(id: $id) { status } }`, { id: request.id });
  await eventually(async () =>
    (await rep.gql(`{ myNotifications { edges { node { type entityId } } } }`)).data?.myNotifications.edges.some(
      (e: { node: { type: string; entityId: string } }) => e.node.type === 'APPROVAL_DECIDED' && e.node.entityId === request.id,
    ),
  );
  await eventually(async () =>
    (await rep.gql(`{ myTasks(first: 50) { edges { node { title } } } }`)).data?.myTasks.edges.some(
      (e: { node: { title: string } }) => e.node.title === 'Follow up: Onboarding discount',
    ),
  );
});

test('reports change after the events that feed them', async () => {
  const REPORTS = `query($from: DateTime!, $to: DateTime!) {
    salesSummary(from: $from, to: $to) { customersCreated meetingsHeld tasksCreated tasksCompleted approvalsRequested approvalsApproved approvedAmount }
    customerStats { total unassigned bySize { key count } }
    approvalStats { pending approved }
    taskCompletionRate { total completed rate }
  }`;
  const window = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString() };
  const before = (await manager.gql(REPORTS, window)).data;
  expect(before).toBeTruthy();

  const rep = await stack.user('SALES', 'Rex Reports');
  const customerId = await createCustomer(rep, 'Reportable', undefined);
  const request = dataOf(
    await rep.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title: 'Big one', amount: 1000 } }),
    'requestApproval',
  );
  await manager.gql(`mutation($id: ID!) { approveRequest(id: $id) { status } }`, { id: request.id });

  const after = await eventually(
    async () => {
      const r = (await manager.gql(REPORTS, window)).data;
      return r && r.salesSummary.approvalsApproved === before.salesSummary.approvalsApproved + 1 && r.customerStats.total === before.customerStats.total + 1 ? r : undefined;
    },
    { timeoutMs: 30_000 },
  );
  expect(after.salesSummary.customersCreated).toBe(before.salesSummary.customersCreated + 1);
  expect(after.salesSummary.approvedAmount).toBe(before.salesSummary.approvedAmount + 1000);
  expect(after.approvalStats.approved).toBe(before.approvalStats.approved + 1);
  // SALES may not read reports
  expect((await rep.gql(`{ customerStats { total } }`)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
});
