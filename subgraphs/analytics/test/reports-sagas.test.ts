/**
 * Reports from analytics' own projections (cached, and invalidated by the events that change
 * them), who may read them, event metrics, and the saga read model (out-of-order steps,
 * completion, compensation with the SYSTEM notification to the requester of the deletion).
 */
import { startTestSubgraph, type TestCaller, type TestSubgraph } from '@crm/testing';
import { type SagaStepData } from '@crm/events';
import { analyticsSubgraph } from '../src';
import { eventually, code, consumed, statementsOf, newUsers, notificationsOf, publisher, randomUUID } from './helpers';

let an: TestSubgraph;
let bus: ReturnType<typeof publisher>;
let manager: TestCaller;
let compliance: TestCaller;
let sales: TestCaller;
let admin: TestCaller;

beforeAll(async () => {
  an = await startTestSubgraph(analyticsSubgraph);
  bus = publisher(an);
  [admin, manager, compliance, sales] = (await newUsers(an, 'ADMIN', 'MANAGER', 'COMPLIANCE', 'SALES')) as [TestCaller, TestCaller, TestCaller, TestCaller];
}, 300_000); // a shared 2-core machine can take a while to start a subgraph
afterAll(async () => {
  await an?.stop();
});

const customer = (customerId: string, size: string | null, profile: string | null, repId: string | null = null) => ({
  customerId,
  name: 'Acme',
  assignedRepId: repId,
  size,
  investmentProfile: profile,
});
const task = (taskId: string, assigneeId: string, status = 'TODO') => ({ taskId, title: 'Do it', assigneeId, customerId: null, status, priority: 'LOW', dueAt: null });
const approval = (
  requestId: string,
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'RECALLED' | 'CANCELLED',
  requestedAt: string,
  decidedAt: string | null,
  amount: number | null = 100,
) => ({
  requestId,
  customerId: randomUUID(),
  requesterId: sales.id,
  approverId: null,
  title: 'Deal',
  amount,
  status,
  comment: null,
  requestedAt,
  decidedAt,
});

const SUMMARY = `query($from: DateTime!, $to: DateTime!) { salesSummary(from: $from, to: $to) {
  from to customersCreated meetingsHeld tasksCreated tasksCompleted approvalsRequested approvalsApproved approvedAmount } }`;

test('salesSummary counts within [from, to) and shows new events after a cached read', async () => {
  const from = '2020-03-01T00:00:00.000Z';
  const to = '2020-04-01T00:00:00.000Z';
  const inside = '2020-03-10T12:00:00.000Z';
  const empty = await manager.gql(SUMMARY, { from, to });
  expect(empty.errors).toBeUndefined();
  expect(empty.data.salesSummary).toEqual({
    from,
    to,
    customersCreated: 0,
    meetingsHeld: 0,
    tasksCreated: 0,
    tasksCompleted: 0,
    approvalsRequested: 0,
    approvalsApproved: 0,
    approvedAmount: 0,
  });

  const c1 = randomUUID();
  const t1 = randomUUID();
  const t2 = randomUUID();
  const a1 = randomUUID();
  const a2 = randomUUID();
  const m1 = randomUUID();
  await bus.publish('customer.created', c1, customer(c1, 'SMALL', null), { occurredAt: inside });
  const outsideId = randomUUID();
  const outside = await bus.publish('customer.created', outsideId, customer(outsideId, 'SMALL', null), { occurredAt: to }); // to is exclusive
  await bus.publish('meeting.created', m1, { meetingId: m1, customerId: c1, repId: sales.id, startsAt: inside, summary: 'Intro' }, { occurredAt: inside });
  await bus.publish('task.created', t1, task(t1, sales.id), { occurredAt: inside });
  await bus.publish('task.created', t2, task(t2, sales.id), { occurredAt: inside });
  await bus.publish('task.completed', t1, { ...task(t1, sales.id, 'COMPLETED'), completedAt: '2020-03-11T00:00:00.000Z' }, { occurredAt: '2020-03-11T00:00:00.000Z' });
  await bus.publish('approval.requested', a1, approval(a1, 'PENDING', inside, null, 250.5), { occurredAt: inside });
  await bus.publish('approval.approved', a1, approval(a1, 'APPROVED', inside, '2020-03-12T00:00:00.000Z', 250.5));
  await bus.publish('approval.requested', a2, approval(a2, 'PENDING', inside, null, 999), { occurredAt: inside });
  await bus.publish('approval.rejected', a2, approval(a2, 'REJECTED', inside, '2020-03-12T00:00:00.000Z', 999));

  const expected = {
    from,
    to,
    customersCreated: 1,
    meetingsHeld: 1,
    tasksCreated: 2,
    tasksCompleted: 1,
    approvalsRequested: 2,
    approvalsApproved: 1,
    approvedAmount: 250.5,
  };
  // events of different aggregates may be consumed in any order (Kafka partitions): wait for all
  await eventually(async () => JSON.stringify((await manager.gql(SUMMARY, { from, to })).data?.salesSummary) === JSON.stringify(expected));
  await consumed(an, outside);
  expect((await manager.gql(SUMMARY, { from, to })).data.salesSummary).toEqual(expected);
  // COMPLIANCE and ADMIN read reports too; SALES may not; to before from is bad input
  expect((await compliance.gql(SUMMARY, { from, to })).data.salesSummary.customersCreated).toBe(1);
  expect((await admin.gql(SUMMARY, { from, to })).data.salesSummary.tasksCreated).toBe(2);
  expect(code(await sales.gql(SUMMARY, { from, to }))).toBe('FORBIDDEN');
  const backwards = await manager.gql(SUMMARY, { from: to, to: from });
  expect(code(backwards)).toBe('BAD_USER_INPUT');
  // a date Postgres cannot hold (the year 0) is bad input, not a failed statement
  expect(code(await manager.gql(SUMMARY, { from: '0000-01-01T00:00:00Z', to }))).toBe('BAD_USER_INPUT');
  expect(code(await manager.gql('query($from: DateTime) { approvalStats(from: $from) { pending } }', { from: '0000-01-01T00:00:00Z' }))).toBe('BAD_USER_INPUT');
});

test('customerStats over customers not deleted, and it changes with customer events after a cached read', async () => {
  const STATS = '{ customerStats { total unassigned bySize { key count } byInvestmentProfile { key count } } }';
  const before = (await manager.gql(STATS)).data.customerStats;
  const count = (list: { key: string; count: number }[], key: string) => list.find((k) => k.key === key)?.count ?? 0;

  const a = randomUUID();
  const b = randomUUID();
  await bus.publish('customer.created', a, customer(a, 'ENTERPRISE', 'AGGRESSIVE', sales.id));
  await bus.publish('customer.created', b, customer(b, 'ENTERPRISE', null));
  const after = await eventually(async () => {
    const s = (await manager.gql(STATS)).data?.customerStats;
    return s && s.total === before.total + 2 ? s : null;
  });
  expect(after.unassigned).toBe(before.unassigned + 1);
  expect(count(after.bySize, 'ENTERPRISE')).toBe(count(before.bySize, 'ENTERPRISE') + 2);
  expect(count(after.byInvestmentProfile, 'AGGRESSIVE')).toBe(count(before.byInvestmentProfile, 'AGGRESSIVE') + 1);
  expect(count(after.byInvestmentProfile, 'UNSPECIFIED')).toBe(count(before.byInvestmentProfile, 'UNSPECIFIED') + 1);

  const sagaId = randomUUID();
  await bus.publish('customer.deleted', b, { ...customer(b, 'ENTERPRISE', null), sagaId, requestedBy: manager.id }, { actorId: manager.id, correlationId: sagaId });
  const deleted = await eventually(async () => {
    const s = (await manager.gql(STATS)).data?.customerStats;
    return s && s.total === before.total + 1 ? s : null;
  });
  expect(deleted.unassigned).toBe(before.unassigned);
  await bus.publish('customer.restored', b, { ...customer(b, 'ENTERPRISE', null), sagaId });
  await eventually(async () => (await manager.gql(STATS)).data?.customerStats.total === before.total + 2);
  await bus.publish('customer.updated', a, { ...customer(a, 'SMALL', 'AGGRESSIVE', sales.id), changes: ['size'] });
  await eventually(async () => count((await manager.gql(STATS)).data?.customerStats.bySize ?? [], 'ENTERPRISE') === count(before.bySize, 'ENTERPRISE') + 1);
  expect(code(await sales.gql(STATS))).toBe('FORBIDDEN');
});

test('approvalStats by requestedAt window; meanDecisionSeconds over decided requests, null when none', async () => {
  const STATS = `query($from: DateTime, $to: DateTime) { approvalStats(from: $from, to: $to) { pending approved rejected recalled cancelled meanDecisionSeconds } }`;
  const from = '2021-06-01T00:00:00.000Z';
  const to = '2021-07-01T00:00:00.000Z';
  const at = '2021-06-10T00:00:00.000Z';
  const plus = (s: number) => new Date(Date.parse(at) + s * 1000).toISOString();
  expect((await manager.gql(STATS, { from, to })).data.approvalStats).toEqual({ pending: 0, approved: 0, rejected: 0, recalled: 0, cancelled: 0, meanDecisionSeconds: null });

  const [p, ok, no, back, gone] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  await bus.publish('approval.requested', p, approval(p, 'PENDING', at, null));
  await bus.publish('approval.requested', ok, approval(ok, 'PENDING', at, null));
  await bus.publish('approval.approved', ok, approval(ok, 'APPROVED', at, plus(60)));
  await bus.publish('approval.requested', no, approval(no, 'PENDING', at, null));
  await bus.publish('approval.rejected', no, approval(no, 'REJECTED', at, plus(120)));
  await bus.publish('approval.recalled', back, approval(back, 'RECALLED', at, plus(10)));
  await bus.publish('approval.cancelled', gone, { ...approval(gone, 'CANCELLED', at, plus(5)), reason: 'customer deleted' });
  const expected = { pending: 1, approved: 1, rejected: 1, recalled: 1, cancelled: 1, meanDecisionSeconds: 90 };
  await eventually(async () => JSON.stringify((await compliance.gql(STATS, { from, to })).data?.approvalStats) === JSON.stringify(expected));
  expect((await compliance.gql(STATS, { from, to })).data.approvalStats).toEqual(expected);
  // outside the window: nothing; no window: everything (at least these)
  expect((await manager.gql(STATS, { from: to, to: '2021-08-01T00:00:00.000Z' })).data.approvalStats.pending).toBe(0);
  expect((await manager.gql(STATS, {})).data.approvalStats.recalled).toBeGreaterThanOrEqual(1);
  expect(code(await sales.gql(STATS, {}))).toBe('FORBIDDEN');
});

test('taskCompletionRate by created window and assignee; cancelled tasks do not count', async () => {
  const RATE = `query($from: DateTime, $to: DateTime, $a: ID) { taskCompletionRate(from: $from, to: $to, assigneeId: $a) { total completed rate } }`;
  const from = '2022-01-01T00:00:00.000Z';
  const to = '2022-02-01T00:00:00.000Z';
  const at = '2022-01-15T00:00:00.000Z';
  const other = randomUUID();
  expect((await manager.gql(RATE, { from, to, a: sales.id })).data.taskCompletionRate).toEqual({ total: 0, completed: 0, rate: 0 });

  const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  const sent = [];
  for (const id of ids) sent.push(await bus.publish('task.created', id, task(id, sales.id), { occurredAt: at }));
  const theirs = randomUUID();
  sent.push(await bus.publish('task.created', theirs, task(theirs, other), { occurredAt: at }));
  sent.push(await bus.publish('task.completed', ids[0]!, { ...task(ids[0]!, sales.id, 'COMPLETED'), completedAt: at }));
  sent.push(await bus.publish('task.updated', ids[1]!, task(ids[1]!, sales.id, 'IN_PROGRESS')));
  sent.push(await bus.publish('task.cancelled', ids[2]!, task(ids[2]!, sales.id, 'CANCELLED')));
  // tasks are different aggregates (Kafka partitions): wait until every event is in
  await consumed(an, ...sent);
  const rate = (await manager.gql(RATE, { from, to, a: sales.id })).data.taskCompletionRate;
  expect(rate).toMatchObject({ total: 3, completed: 1 });
  expect(rate.rate).toBeCloseTo(1 / 3);
  expect((await manager.gql(RATE, { from, to })).data.taskCompletionRate).toMatchObject({ total: 4, completed: 1 });
  expect(code(await sales.gql(RATE, {}))).toBe('FORBIDDEN');
});

test('eventMetrics counts every consumed event by type', async () => {
  const METRICS = '{ eventMetrics { key count } }';
  const before = (await admin.gql(METRICS)).data.eventMetrics as { key: string; count: number }[];
  const n = (list: { key: string; count: number }[]) => list.find((m) => m.key === 'user.login')?.count ?? 0;
  const ev = await bus.publish('user.login', sales.id, { userId: sales.id, email: sales.email }, { actorId: sales.id });
  await consumed(an, ev);
  expect(n((await admin.gql(METRICS)).data.eventMetrics)).toBe(n(before) + 1);
  expect(code(await sales.gql(METRICS))).toBe('FORBIDDEN');
});

const SAGA = `query($id: ID!) { saga(id: $id) { id type status subjectId startedAt endedAt steps { name status at detail } } }`;
const step = (
  sagaId: string,
  sagaType: SagaStepData['sagaType'],
  subjectId: string,
  name: string,
  status: SagaStepData['status'],
  extra: Partial<SagaStepData> = {},
): SagaStepData => ({ sagaId, sagaType, subjectId, step: name, status, detail: null, ends: null, ...extra });

test('saga read model: steps in any order; COMPLETED once every expected step is DONE', async () => {
  const sagaId = randomUUID();
  const subject = randomUUID();
  const expectedSteps = ['customer.soft-delete', 'sales-activity.remove-activities', 'opportunity.cancel-requests'];
  const cause = { correlationId: sagaId, actorId: manager.id };
  // the second step arrives before the first (which carries expectedSteps)
  await bus.publish('sales-activity.saga_step', sagaId, step(sagaId, 'customer-deletion', subject, 'sales-activity.remove-activities', 'DONE', { detail: '2 removed' }), cause);
  const early = await eventually(async () => (await manager.gql(SAGA, { id: sagaId })).data?.saga);
  expect(early).toMatchObject({ id: sagaId, type: 'customer-deletion', status: 'RUNNING', subjectId: subject, endedAt: null });
  expect(early.steps).toEqual([expect.objectContaining({ name: 'sales-activity.remove-activities', status: 'DONE', detail: '2 removed' })]);

  const first = await bus.publish('customer.saga_step', sagaId, step(sagaId, 'customer-deletion', subject, 'customer.soft-delete', 'DONE', { expectedSteps }), cause);
  await consumed(an, first);
  expect((await manager.gql(SAGA, { id: sagaId })).data.saga.status).toBe('RUNNING');
  const dup = bus.build('opportunity.saga_step', sagaId, step(sagaId, 'customer-deletion', subject, 'opportunity.cancel-requests', 'DONE'), cause);
  await bus.send(dup, dup);
  const done = await eventually(async () => {
    const s = (await compliance.gql(SAGA, { id: sagaId })).data?.saga;
    return s?.status === 'COMPLETED' ? s : null;
  });
  expect(done.endedAt).toBeTruthy();
  expect(done.steps.map((s: { name: string }) => s.name).sort()).toEqual([...expectedSteps].sort());
  expect(code(await sales.gql(SAGA, { id: sagaId }))).toBe('FORBIDDEN');
  expect((await manager.gql(SAGA, { id: randomUUID() })).data.saga).toBeNull();

  // _entities (how deleteUser / deleteCustomer results are resolved): readers only; an unknown id is RUNNING with no steps
  const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Saga { id type status steps { name } } } }`;
  const unknown = randomUUID();
  const r = await an.call(manager.identity, ENTITIES, {
    r: [
      { __typename: 'Saga', id: sagaId },
      { __typename: 'Saga', id: unknown },
    ],
  });
  expect(r.data._entities[0]).toMatchObject({ id: sagaId, status: 'COMPLETED' });
  expect(r.data._entities[1]).toEqual({ id: unknown, type: 'unknown', status: 'RUNNING', steps: [] });
  const forSales = await an.call(sales.identity, ENTITIES, { r: [{ __typename: 'Saga', id: sagaId }] });
  expect(forSales.data._entities).toEqual([null]);
});

test('customer-deletion refused → COMPENSATED, and a SYSTEM notification to the requester (whatever the order)', async () => {
  const [requester] = (await newUsers(an, 'MANAGER')) as [TestCaller];
  const run = async (refusalFirst: boolean) => {
    const sagaId = randomUUID();
    const customerId = randomUUID();
    const cause = { correlationId: sagaId, actorId: null };
    const deleted = bus.build(
      'customer.deleted',
      customerId,
      { ...customer(customerId, 'SMALL', null), sagaId, requestedBy: requester.id },
      { correlationId: sagaId, actorId: requester.id },
    );
    const refused = bus.build(
      'opportunity.saga_step',
      sagaId,
      step(sagaId, 'customer-deletion', customerId, 'opportunity.cancel-requests', 'REFUSED', { detail: 'approved request within 30 days' }),
      cause,
    );
    if (refusalFirst) {
      await bus.send(refused);
      await consumed(an, refused);
      expect((await notificationsOf(requester)).filter((n) => n.entityId === customerId)).toEqual([]);
      await bus.send(deleted);
    } else {
      await bus.send(deleted);
      await consumed(an, deleted);
      await bus.send(refused);
    }
    await bus.publish(
      'customer.saga_step',
      sagaId,
      step(sagaId, 'customer-deletion', customerId, 'customer.soft-delete', 'DONE', {
        expectedSteps: ['customer.soft-delete', 'sales-activity.remove-activities', 'opportunity.cancel-requests', 'analytics.archive-notifications'],
      }),
      cause,
    );
    await bus.publish('customer.saga_step', sagaId, step(sagaId, 'customer-deletion', customerId, 'customer.restore', 'COMPENSATED'), cause);
    await bus.publish(
      'sales-activity.saga_step',
      sagaId,
      step(sagaId, 'customer-deletion', customerId, 'sales-activity.restore-activities', 'COMPENSATED', { ends: 'COMPENSATED' }),
      cause,
    );
    const saga = await eventually(async () => {
      const s = (await manager.gql(SAGA, { id: sagaId })).data?.saga;
      // the four sent, plus analytics' own archive-notifications (taken on customer.deleted)
      return s?.status === 'COMPENSATED' && s.steps.length === 5 ? s : null;
    });
    expect(saga.steps.find((s: { name: string }) => s.name === 'analytics.archive-notifications')).toMatchObject({ status: 'DONE' });
    expect(saga.endedAt).toBeTruthy();
    expect(saga.steps.find((s: { name: string }) => s.name === 'opportunity.cancel-requests')).toMatchObject({ status: 'REFUSED' });
    const notes = await eventually(async () => {
      const n = (await notificationsOf(requester)).filter((x) => x.entityId === customerId);
      return n.length > 0 ? n : null;
    });
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ type: 'SYSTEM', entityType: 'Customer', body: 'approved request within 30 days' });
    // a late DONE step does not reopen a finished saga
    const late = await bus.publish('sales-activity.saga_step', sagaId, step(sagaId, 'customer-deletion', customerId, 'sales-activity.remove-activities', 'DONE'), cause);
    await consumed(an, late);
    expect((await manager.gql(SAGA, { id: sagaId })).data.saga.status).toBe('COMPENSATED');
  };
  await run(false);
  await run(true);
});

test('reports are served from the cache while nothing changes; Saga references and steps are batched', async () => {
  // warm: only the projection-version lookup reaches the database, not the aggregation
  await manager.gql('{ customerStats { total } }');
  const warm = await statementsOf(an, async () => {
    expect((await manager.gql('{ customerStats { total } }')).errors).toBeUndefined();
  });
  expect(warm).toHaveLength(1);
  expect(warm[0]).toMatch(/report_versions/);

  const ids: string[] = [];
  const steps = [];
  for (let i = 0; i < 50; i++) {
    const sagaId = randomUUID();
    ids.push(sagaId);
    steps.push(
      bus.build('user.saga_step', sagaId, step(sagaId, 'user-deletion', randomUUID(), 'auth.deactivate-user', 'DONE', { expectedSteps: ['auth.deactivate-user', 'x.y'] }), {
        correlationId: sagaId,
        actorId: null,
      }),
    );
  }
  await bus.send(...steps);
  await consumed(an, ...steps);
  const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Saga { id status steps { name status } } } }`;
  const at = async (n: number) =>
    (
      await statementsOf(an, async () => {
        const r = await an.call(manager.identity, ENTITIES, { r: ids.slice(0, n).map((id) => ({ __typename: 'Saga', id })) });
        expect(r.data._entities.filter((s: { steps: unknown[] } | null) => s && s.steps.length === 1)).toHaveLength(n);
      })
    ).length;
  const five = await at(5);
  const fifty = await at(50);
  expect(fifty).toBe(five);
  expect(five).toBe(2); // sagas by id, steps by saga id
});

test('meeting and approval copies apply only a newer version: a late older meeting.updated cannot bring a deleted meeting back', async () => {
  const from = '2020-05-01T00:00:00.000Z';
  const to = '2020-06-01T00:00:00.000Z';
  const inside = '2020-05-10T12:00:00.000Z';
  const versioned = <E extends { aggregateVersion?: number | null }>(e: E, v: number): E => Object.assign(e, { aggregateVersion: v });
  const meetingId = randomUUID();
  const meeting = (startsAt: string) => ({ meetingId, customerId: randomUUID(), repId: sales.id, startsAt, summary: 'Intro', nextAction: null });
  const apply = async (e: Parameters<typeof bus.send>[0]) => {
    await bus.send(e);
    await consumed(an, e);
  };
  const held = async () => (await manager.gql(SUMMARY, { from, to })).data.salesSummary.meetingsHeld as number;
  await apply(versioned(bus.build('meeting.created', meetingId, meeting('2020-04-10T12:00:00.000Z')), 1));
  const moved = () => versioned(bus.build('meeting.updated', meetingId, { ...meeting(inside), changes: ['startsAt'] }), 2);
  await apply(moved());
  expect(await held()).toBe(1);
  await apply(versioned(bus.build('meeting.deleted', meetingId, meeting(inside)), 3));
  expect(await held()).toBe(0);
  // the update again under a new event id (a replayed dead letter the inbox no longer remembers)
  await apply(moved());
  expect(await held()).toBe(0);

  const requestId = randomUUID();
  const APPROVALS = 'query($from: DateTime!, $to: DateTime!) { salesSummary(from: $from, to: $to) { approvalsApproved approvedAmount } }';
  await apply(versioned(bus.build('approval.requested', requestId, approval(requestId, 'PENDING', inside, null, 100)), 1));
  const updated = () => versioned(bus.build('approval.updated', requestId, { ...approval(requestId, 'PENDING', inside, null, 300), changes: ['amount'] }), 2);
  await apply(updated());
  await apply(versioned(bus.build('approval.approved', requestId, approval(requestId, 'APPROVED', inside, '2020-05-12T00:00:00.000Z', 300)), 3));
  await apply(updated());
  expect((await manager.gql(APPROVALS, { from, to })).data.salesSummary).toEqual({ approvalsApproved: 1, approvedAmount: 300 });
});
