/**
 * Editing and deleting what users create (issue 29), through the gateway on the whole stack, with
 * the events' copies and reports following: updateMeeting / deleteMeeting (meeting.updated /
 * meeting.deleted: analytics' meetingsHeld and event metrics, auth's audit log), updateApprovalRequest
 * (approval.updated: the approved amount follows), deleteNotification, and the notifications about a
 * deleted customer archived by the customer-deletion saga — and back when the saga compensates.
 */
import { eventually } from '@crm/testing';
import { dataOf, errorCode, startTestStack, type TestStack, type TestUser } from '@crm/platform';

let stack: TestStack;
let admin: TestUser;
let manager: TestUser;
beforeAll(async () => {
  stack = await startTestStack();
  admin = await stack.admin();
  manager = await stack.user('MANAGER', 'Mia Manager');
});
afterAll(async () => {
  await stack?.stop();
});

const SAGA = `query($id: ID!) { saga(id: $id) { id type status steps { name status detail } } }`;
const MEETING = 'query($id: ID!) { meeting(id: $id) { id startsAt summary nextAction rep { id } } }';
const UPDATE_MEETING = 'mutation($id: ID!, $input: UpdateMeetingInput!) { updateMeeting(id: $id, input: $input) { id startsAt summary nextAction } }';
const DELETE_MEETING = 'mutation($id: ID!) { deleteMeeting(id: $id) }';
const UPDATE_REQUEST = 'mutation($id: ID!, $input: UpdateApprovalRequestInput!) { updateApprovalRequest(id: $id, input: $input) { id title description amount status } }';
const NOTIFICATIONS = '{ myNotifications(first: 50) { edges { node { id type entityType entityId } } } }';

async function createCustomer(user: TestUser, name: string): Promise<string> {
  return dataOf(await user.gql('mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }', { input: { name } }), 'createCustomer').id;
}

async function recordMeeting(user: TestUser, customerId: string, startsAt: string, summary: string): Promise<string> {
  return dataOf(
    await user.gql('mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }', { input: { customerId, startsAt, summary, nextAction: 'Send the offer' } }),
    'recordMeeting',
  ).id;
}

const meetingsHeld = async (from: string, to: string): Promise<number> =>
  dataOf(await manager.gql('query($f: DateTime!, $t: DateTime!) { salesSummary(from: $f, to: $t) { meetingsHeld } }', { f: from, t: to }), 'salesSummary').meetingsHeld;

const auditActions = async (entityId: string): Promise<string[]> => {
  const r = await admin.gql('{ auditLog(entityType: "Meeting", first: 100) { edges { node { action entityId } } } }');
  return dataOf<{ edges: { node: { action: string; entityId: string } }[] }>(r, 'auditLog')
    .edges.filter((e) => e.node.entityId === entityId)
    .map((e) => e.node.action);
};

const notificationsOf = async (user: TestUser) =>
  dataOf<{ edges: { node: { id: string; type: string; entityType: string | null; entityId: string | null } }[] }>(await user.gql(NOTIFICATIONS), 'myNotifications').edges.map(
    (e) => e.node,
  );

const sagaWith = (id: string, status: string, steps: [string, string][]) =>
  eventually(
    async () => {
      const saga = (await admin.gql(SAGA, { id })).data?.saga;
      const has = ([name, st]: [string, string]) => saga?.steps.some((s: { name: string; status: string }) => s.name === name && s.status === st);
      return saga?.status === status && steps.every(has) ? saga : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );

test('a meeting is corrected and removed by its rep (or a MANAGER); reports, metrics and the audit log follow', async () => {
  const rep = await stack.user('SALES', 'Rita Rep');
  const stranger = await stack.user('SALES', 'Stan Stranger');
  const compliance = await stack.user('COMPLIANCE', 'Cora Compliance');
  const customerId = await createCustomer(rep, 'Umbrella');
  // a window of its own, far from the other tests' meetings
  const day = new Date(Date.UTC(2031, 0, 10 + Math.floor(Math.random() * 300))).getTime();
  const inside = new Date(day + 10 * 3600_000).toISOString();
  const [from, to] = [new Date(day).toISOString(), new Date(day + 86_400_000).toISOString()];
  const later = new Date(day + 3 * 86_400_000).toISOString();
  const meetingId = await recordMeeting(rep, customerId, inside, 'Intro');
  await eventually(async () => (await meetingsHeld(from, to)) === 1);

  // others cannot change it; bad input is refused; nothing changes
  expect(errorCode(await stranger.gql(UPDATE_MEETING, { id: meetingId, input: { summary: 'Hijacked' } }))).toBe('NOT_FOUND');
  expect(errorCode(await stranger.gql(DELETE_MEETING, { id: meetingId }))).toBe('NOT_FOUND');
  expect(errorCode(await compliance.gql(UPDATE_MEETING, { id: meetingId, input: { summary: 'Read-only' } }))).toBe('FORBIDDEN');
  const empty = await rep.gql(UPDATE_MEETING, { id: meetingId, input: { summary: '  ' } });
  expect(errorCode(empty)).toBe('BAD_USER_INPUT');
  expect(empty.errors?.[0]?.extensions?.field).toBe('summary');
  expect(errorCode(await rep.gql(UPDATE_MEETING, { id: meetingId, input: { startsAt: null } }))).toBe('BAD_USER_INPUT');
  expect(errorCode(await rep.gql(UPDATE_MEETING, { id: 'not-an-id', input: { summary: 'x' } }))).toBe('NOT_FOUND');
  expect((await rep.gql(MEETING, { id: meetingId })).data.meeting).toMatchObject({ summary: 'Intro', nextAction: 'Send the offer', startsAt: inside });

  // the rep moves it out of the window and rewrites it
  const moved = await rep.gql(UPDATE_MEETING, { id: meetingId, input: { startsAt: later, summary: 'Intro, rescheduled', nextAction: null } });
  expect(moved.errors).toBeUndefined();
  expect(moved.data.updateMeeting).toEqual({ id: meetingId, startsAt: later, summary: 'Intro, rescheduled', nextAction: null });
  expect((await manager.gql(MEETING, { id: meetingId })).data.meeting).toMatchObject({ startsAt: later, summary: 'Intro, rescheduled', nextAction: null, rep: { id: rep.id } });
  await eventually(async () => (await meetingsHeld(from, to)) === 0);
  // a MANAGER may correct it too (back into the window)
  dataOf(await manager.gql(UPDATE_MEETING, { id: meetingId, input: { startsAt: inside } }), 'updateMeeting');
  await eventually(async () => (await meetingsHeld(from, to)) === 1);

  // removed: gone for every reader, not counted, and audited
  expect(dataOf(await rep.gql(DELETE_MEETING, { id: meetingId }), 'deleteMeeting')).toBe(meetingId);
  expect((await manager.gql(MEETING, { id: meetingId })).data.meeting).toBeNull();
  expect(errorCode(await rep.gql(DELETE_MEETING, { id: meetingId }))).toBe('NOT_FOUND');
  expect(errorCode(await rep.gql(UPDATE_MEETING, { id: meetingId, input: { summary: 'Too late' } }))).toBe('NOT_FOUND');
  const customerMeetings = await manager.gql('query($id: ID!) { customer(id: $id) { meetings { totalCount } } }', { id: customerId });
  expect(customerMeetings.data.customer.meetings.totalCount).toBe(0);
  await eventually(async () => (await meetingsHeld(from, to)) === 0);
  const actions = await eventually(
    async () => {
      const a = await auditActions(meetingId);
      return a.includes('meeting.deleted') && a.filter((x) => x === 'meeting.updated').length === 2 ? a : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(actions).toEqual(expect.arrayContaining(['meeting.created', 'meeting.updated', 'meeting.deleted']));
  const metrics = dataOf<{ key: string; count: number }[]>(await manager.gql('{ eventMetrics { key count } }'), 'eventMetrics');
  expect(metrics.find((m) => m.key === 'meeting.updated')?.count).toBeGreaterThanOrEqual(2);
  expect(metrics.find((m) => m.key === 'meeting.deleted')?.count).toBeGreaterThanOrEqual(1);
});

test('an approval request is corrected by its requester while PENDING; the approved amount follows; afterwards CONFLICT', async () => {
  const rep = await stack.user('SALES', 'Reza Requester');
  const customerId = await createCustomer(rep, 'Stark');
  const request = dataOf(
    await rep.gql('mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }', {
      input: { customerId, title: 'Discount', description: 'first draft', amount: 100 },
    }),
    'requestApproval',
  );

  expect(errorCode(await manager.gql(UPDATE_REQUEST, { id: request.id, input: { amount: 1 } }))).toBe('FORBIDDEN');
  expect(errorCode(await rep.gql(UPDATE_REQUEST, { id: request.id, input: { amount: -5 } }))).toBe('BAD_USER_INPUT');
  expect(errorCode(await rep.gql(UPDATE_REQUEST, { id: request.id, input: { title: null } }))).toBe('BAD_USER_INPUT');
  const updated = await rep.gql(UPDATE_REQUEST, { id: request.id, input: { title: 'Volume discount', description: null, amount: 250.5 } });
  expect(updated.errors).toBeUndefined();
  expect(updated.data.updateApprovalRequest).toEqual({ id: request.id, title: 'Volume discount', description: null, amount: 250.5, status: 'PENDING' });

  const from = new Date(Date.now() - 60_000).toISOString();
  const SUMMARY = 'query($f: DateTime!, $t: DateTime!) { salesSummary(from: $f, to: $t) { approvedAmount } }';
  const before = dataOf(await manager.gql(SUMMARY, { f: from, t: new Date(Date.now() + 3600_000).toISOString() }), 'salesSummary').approvedAmount;
  expect(dataOf(await manager.gql('mutation($id: ID!) { approveRequest(id: $id) { status amount } }', { id: request.id }), 'approveRequest')).toEqual({
    status: 'APPROVED',
    amount: 250.5,
  });
  await eventually(
    async () => {
      const now = dataOf(await manager.gql(SUMMARY, { f: from, t: new Date(Date.now() + 3600_000).toISOString() }), 'salesSummary').approvedAmount;
      return Math.abs(now - before - 250.5) < 1e-6;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );

  // decided: no more changes, and nothing changed
  expect(errorCode(await rep.gql(UPDATE_REQUEST, { id: request.id, input: { amount: 999 } }))).toBe('CONFLICT');
  expect((await rep.gql('query($id: ID!) { approvalRequest(id: $id) { amount title } }', { id: request.id })).data.approvalRequest).toEqual({
    amount: 250.5,
    title: 'Volume discount',
  });
  const audited = await eventually(
    async () => {
      const r = await admin.gql('{ auditLog(entityType: "ApprovalRequest", first: 100) { edges { node { action entityId details } } } }');
      return dataOf<{ edges: { node: { action: string; entityId: string; details: { changes?: string[] } } }[] }>(r, 'auditLog').edges.find(
        (e) => e.node.entityId === request.id && e.node.action === 'approval.updated',
      );
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(audited.node.details.changes).toEqual(['title', 'description', 'amount']);
});

test('a user deletes their own notification, and only their own', async () => {
  const rep = await stack.user('SALES', 'Nora Notified');
  const other = await stack.user('SALES', 'Otto Other');
  // a task a MANAGER gives the rep: TASK_ASSIGNED
  const task = dataOf(
    await manager.gql('mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }', { input: { title: 'Prepare the demo', assigneeId: rep.id } }),
    'createTask',
  );
  const notice = await eventually(async () => (await notificationsOf(rep)).find((n) => n.entityId === task.id));
  expect(notice.type).toBe('TASK_ASSIGNED');

  expect(errorCode(await other.gql('mutation($id: ID!) { deleteNotification(id: $id) }', { id: notice.id }))).toBe('NOT_FOUND');
  expect(errorCode(await manager.gql('mutation($id: ID!) { deleteNotification(id: $id) }', { id: notice.id }))).toBe('NOT_FOUND');
  expect((await rep.gql('query($id: ID!) { notification(id: $id) { id } }', { id: notice.id })).data.notification).toEqual({ id: notice.id });

  expect(dataOf(await rep.gql('mutation($id: ID!) { deleteNotification(id: $id) }', { id: notice.id }), 'deleteNotification')).toBe(notice.id);
  expect((await rep.gql('query($id: ID!) { notification(id: $id) { id } }', { id: notice.id })).data.notification).toBeNull();
  expect((await notificationsOf(rep)).some((n) => n.id === notice.id)).toBe(false);
  expect(errorCode(await rep.gql('mutation($id: ID!) { deleteNotification(id: $id) }', { id: notice.id }))).toBe('NOT_FOUND');
  expect(errorCode(await rep.gql('mutation { deleteNotification(id: "nope") }'))).toBe('NOT_FOUND');
});

test("deleting a customer archives the notifications about it (its own and its tasks'); a compensated deletion brings them back", async () => {
  const rep = await stack.user('SALES', 'Dana Deleted');
  // customer 1: deleted for good
  const gone = await createCustomer(rep, 'Gone Corp');
  const goneTask = dataOf(
    await manager.gql('mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }', { input: { title: 'Call Gone Corp', assigneeId: rep.id, customerId: gone } }),
    'createTask',
  );
  // customer 2: its deletion is refused (a recent APPROVED request) and compensated
  const kept = await createCustomer(rep, 'Kept Corp');
  const request = dataOf(
    await rep.gql('mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }', { input: { customerId: kept, title: 'Pilot', amount: 10 } }),
    'requestApproval',
  );
  dataOf(await manager.gql('mutation($id: ID!) { approveRequest(id: $id) { status } }', { id: request.id }), 'approveRequest');

  const about = <N extends { entityId: string | null }>(list: N[], ids: string[]): N[] => list.filter((n) => n.entityId !== null && ids.includes(n.entityId));
  const before = await eventually(
    async () => {
      const list = await notificationsOf(rep);
      // CUSTOMER_ASSIGNED for both customers, TASK_ASSIGNED for the task, APPROVAL_DECIDED for the request
      return about(list, [gone, goneTask.id]).length === 2 && about(list, [kept, request.id]).length === 2 ? list : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  const keptIds = about(before, [kept, request.id])
    .map((n) => n.id)
    .sort();

  const del1 = dataOf(await manager.gql('mutation($id: ID!) { deleteCustomer(id: $id) { id } }', { id: gone }), 'deleteCustomer');
  const saga1 = await sagaWith(del1.id, 'COMPLETED', [['analytics.archive-notifications', 'DONE']]);
  expect(saga1.steps.find((s: { name: string }) => s.name === 'analytics.archive-notifications').detail).toBe('2 notifications archived');
  expect(about(await notificationsOf(rep), [gone, goneTask.id])).toEqual([]);

  const del2 = dataOf(await manager.gql('mutation($id: ID!) { deleteCustomer(id: $id) { id } }', { id: kept }), 'deleteCustomer');
  await sagaWith(del2.id, 'COMPENSATED', [
    ['analytics.archive-notifications', 'DONE'],
    ['analytics.restore-notifications', 'COMPENSATED'],
  ]);
  const after = await notificationsOf(rep);
  expect(
    about(after, [kept, request.id])
      .map((n) => n.id)
      .sort(),
  ).toEqual(keptIds);
  // the first customer's stay archived
  expect(about(after, [gone, goneTask.id])).toEqual([]);
});
