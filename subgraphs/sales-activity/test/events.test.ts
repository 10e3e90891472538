/**
 * What sales-activity does on other domains' events (published here as the customer, opportunity
 * and auth subgraphs publish them), and the due-soon job.
 */
import { randomUUID } from 'node:crypto';
import { eventually, startTestSubgraph, userData, type TestCaller, type TestSubgraph } from '@crm/testing';
import { type Envelope, type EventData } from '@crm/events';
import { salesActivitySubgraph } from '../src';
import { runDueSoon } from '../src/due-soon';
import { COMPLETE_TASK, CREATE_TASK, RECORD_MEETING, SA, UPDATE_TASK, code, customerData, publishCustomerEvent, seedCustomer, sql } from './helpers';

let sa: TestSubgraph;
let rep: TestCaller;
let manager: TestCaller;

beforeAll(async () => {
  sa = await startTestSubgraph(salesActivitySubgraph, { env: { DUE_SOON_INTERVAL_MS: '3600000' } });
  rep = sa.user('SALES');
  manager = sa.user('MANAGER');
}, 300_000); // a loaded shared machine can take minutes to start a subgraph
afterAll(async () => {
  await sa?.stop();
});

const outbox = (key: string) => sql<{ type: string; envelope: Envelope }>(sa, 'select type, envelope from outbox where key = ? order by created_at, id', [key]);
const TASKS_OF = `query($id: ID!) { task(id: $id) { id status } }`;

test('customer.created → directory row and a HIGH "First contact" task for the rep due in 2 days; redelivery changes nothing', async () => {
  const data = customerData('Umbrella Corp', rep.id);
  const env = await sa.publish('customer.created', data.customerId, data, { actorId: manager.id });
  await sa.deliver(env); // redelivered: the inbox skips it
  const Q = `{ _: myTasks { edges { node { id title priority status dueAt customer { id tasks { totalCount } } assignee { id } } } } }`;
  const task = await eventually(async () => {
    const r = await rep.gql(Q);
    return r.data?._.edges.map((e: any) => e.node).find((t: any) => t.customer?.id === data.customerId);
  });
  expect(task).toMatchObject({ title: 'First contact: Umbrella Corp', priority: 'HIGH', status: 'TODO', assignee: { id: rep.id } });
  const due = new Date(task.dueAt).getTime() - new Date(env.occurredAt).getTime();
  expect(due).toBe(2 * 86_400_000);
  const refs = await sql(sa, 'select name, assigned_rep_id, deleted from customer_refs where id = ?', [data.customerId]);
  expect(refs).toEqual([{ name: 'Umbrella Corp', assigned_rep_id: rep.id, deleted: false }]);
  await new Promise((r) => setTimeout(r, 300));
  expect(task.customer.tasks.totalCount).toBe(1);
  const events = await outbox(task.id);
  expect(events.map((e) => e.type)).toEqual(['task.created']);
  expect(events[0]!.envelope).toMatchObject({ causationId: env.id, correlationId: env.correlationId, source: SA });
  expect((await sql(sa, 'select count(*)::int as n from tasks where customer_id = ?', [data.customerId]))[0]).toEqual({ n: 1 });
});

test('customer.created without a rep: directory only, no task', async () => {
  const data = customerData('Nobody Ltd', null);
  await publishCustomerEvent(sa, 'customer.created', data, manager.id);
  await eventually(async () => (await sql(sa, 'select id from customer_refs where id = ?', [data.customerId])).length === 1);
  expect(await sql(sa, 'select id from tasks where customer_id = ?', [data.customerId])).toEqual([]);
});

test('a burst of customer events in one publish (versions out of order, keys repeated): newest version per customer, one task each; replay changes nothing', async () => {
  const ids = [randomUUID(), randomUUID(), randomUUID()];
  const versioned = <T extends 'customer.created' | 'customer.updated' | 'customer.reassigned'>(type: T, id: string, name: string, version: number) => ({
    ...sa.envelope(type, id, { ...customerData(name, rep.id, id), changes: [], fromRepId: null, sagaId: null } as EventData<T>, { actorId: manager.id }),
    aggregateVersion: version,
  });
  // per customer: created (v1), updated (v3), then a late reassigned (v2) that must not win
  const burst = ids.flatMap((id, i) => [
    versioned('customer.created', id, `Burst ${i} v1`, 1),
    versioned('customer.updated', id, `Burst ${i} v3`, 3),
    versioned('customer.reassigned', id, `Burst ${i} v2`, 2),
  ]);
  await sa.deliver(...burst);
  const refs = () =>
    sql<{ id: string; name: string; version: number }>(sa, 'select id, name, version::int as version from customer_refs where id = any(?::uuid[]) order by name', [
      `{${ids.join(',')}}`,
    ]);
  await eventually(async () => (await refs()).filter((r) => r.version === 3).length === 3);
  expect((await refs()).map((r) => r.name)).toEqual(['Burst 0 v3', 'Burst 1 v3', 'Burst 2 v3']);
  const tasks = () => sql<{ customer_id: string }>(sa, "select customer_id from tasks where customer_id = any(?::uuid[]) and title like 'First contact:%'", [`{${ids.join(',')}}`]);
  expect((await tasks()).map((t) => t.customer_id).sort()).toEqual([...ids].sort());
  // the same events again (a redelivery) and a later marker on the same key: nothing changes
  const marker = versioned('customer.updated', ids[0]!, 'Burst 0 v4', 4);
  await sa.deliver(...burst, marker);
  await eventually(async () => (await refs()).some((r) => r.version === 4));
  expect((await refs()).map((r) => r.name)).toEqual(['Burst 0 v4', 'Burst 1 v3', 'Burst 2 v3']);
  expect(await tasks()).toHaveLength(3);
});

test('customer.updated / reassigned keep the directory current: the new rep may use the customer, the old one not', async () => {
  const other = sa.user('SALES');
  const data = customerData('Hooli', rep.id);
  await publishCustomerEvent(sa, 'customer.created', data, rep.id);
  await publishCustomerEvent(sa, 'customer.updated', { ...data, name: 'Hooli XYZ', changes: ['name'] }, rep.id);
  await publishCustomerEvent(sa, 'customer.reassigned', { ...data, name: 'Hooli XYZ', assignedRepId: other.id, fromRepId: rep.id, sagaId: null }, manager.id);
  await eventually(
    async () => (await sql<{ assigned_rep_id: string }>(sa, 'select assigned_rep_id from customer_refs where id = ?', [data.customerId]))[0]?.assigned_rep_id === other.id,
  );
  expect((await sql(sa, 'select name from customer_refs where id = ?', [data.customerId]))[0]).toEqual({ name: 'Hooli XYZ' });
  const input = { customerId: data.customerId, startsAt: '2026-11-10T10:00:00Z', summary: 'Hi' };
  expect((await other.gql(RECORD_MEETING, { input })).errors).toBeUndefined();
  expect(code(await rep.gql(RECORD_MEETING, { input }))).toBe('NOT_FOUND');
});

test('customer-deletion saga: activities hidden by the saga, step DONE; restore brings back exactly what it removed', async () => {
  const customerId = await seedCustomer(sa, 'Soylent', rep.id);
  const task = (await rep.gql(CREATE_TASK, { input: { title: 'Visit', customerId } })).data.createTask.id as string;
  const meeting = (await rep.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-11-05T10:00:00Z', summary: 'Met' } })).data.recordMeeting.id as string;
  const data = customerData('Soylent', rep.id, customerId);
  const sagaId = randomUUID();
  await publishCustomerEvent(sa, 'customer.deleted', { ...data, sagaId, requestedBy: manager.id }, manager.id, sagaId);

  const step = await eventually(async () => (await outbox(sagaId)).find((e) => e.type === 'sales-activity.saga_step'));
  expect(step.envelope.data).toMatchObject({
    sagaId,
    sagaType: 'customer-deletion',
    subjectId: customerId,
    step: 'sales-activity.remove-activities',
    status: 'DONE',
    ends: null,
  });
  expect(step.envelope.correlationId).toBe(sagaId);
  // hidden from every read, for everyone
  const Q = `query($t: ID!, $m: ID!) { task(id: $t) { id } meeting(id: $m) { id } myTasks { edges { node { id } } } }`;
  const hidden = await manager.gql(Q, { t: task, m: meeting });
  expect(hidden.data.task).toBeNull();
  expect(hidden.data.meeting).toBeNull();
  const mine = await rep.gql(Q, { t: task, m: meeting });
  expect(mine.data.task).toBeNull();
  expect(mine.data.myTasks.edges.map((e: any) => e.node.id)).not.toContain(task);
  expect(code(await rep.gql(COMPLETE_TASK, { id: task }))).toBe('NOT_FOUND');
  expect(code(await rep.gql(CREATE_TASK, { input: { title: 'x', customerId } }))).toBe('NOT_FOUND');

  // a restore by another saga brings back nothing; the right one brings back both
  const otherSaga = randomUUID();
  await publishCustomerEvent(sa, 'customer.restored', { ...data, sagaId: otherSaga }, manager.id, otherSaga);
  await eventually(async () => (await outbox(otherSaga)).length === 1);
  expect((await manager.gql(Q, { t: task, m: meeting })).data.task).toBeNull();
  await publishCustomerEvent(sa, 'customer.restored', { ...data, sagaId }, manager.id, sagaId);
  const restored = await eventually(async () =>
    (await outbox(sagaId)).find((e) => e.envelope.data && (e.envelope.data as { step?: string }).step === 'sales-activity.restore-activities'),
  );
  expect(restored.envelope.data).toMatchObject({ status: 'COMPENSATED', ends: 'COMPENSATED', sagaType: 'customer-deletion', subjectId: customerId });
  const back = await rep.gql(Q, { t: task, m: meeting });
  expect(back.data.task).toEqual({ id: task });
  expect(back.data.meeting).toEqual({ id: meeting });
  expect((await rep.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-11-06T10:00:00Z', summary: 'Again' } })).errors).toBeUndefined();
});

test('user-deletion saga (user.deleted as auth publishes it): open tasks cancelled with task.cancelled, future meetings deleted, step DONE', async () => {
  const admin = sa.user('ADMIN');
  const leaving = sa.user('SALES');
  const customerId = await seedCustomer(sa, 'Leaving Co', leaving.id);
  // the onboarding task is one of the open tasks
  await eventually(async () => (await sql(sa, 'select id from tasks where assignee_id = ?', [leaving.id])).length === 1);
  const todo = (await leaving.gql(CREATE_TASK, { input: { title: 'todo' } })).data.createTask.id as string;
  const doing = (await leaving.gql(CREATE_TASK, { input: { title: 'doing' } })).data.createTask.id as string;
  await leaving.gql(UPDATE_TASK, { id: doing, input: { status: 'IN_PROGRESS' } });
  const done = (await leaving.gql(CREATE_TASK, { input: { title: 'done' } })).data.createTask.id as string;
  await leaving.gql(COMPLETE_TASK, { id: done });
  const future = new Date(Date.now() + 7 * 86_400_000).toISOString();
  const past = (await leaving.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-01-05T10:00:00Z', summary: 'past' } })).data.recordMeeting.id as string;
  const upcoming = (await leaving.gql(RECORD_MEETING, { input: { customerId, startsAt: future, summary: 'future' } })).data.recordMeeting.id as string;

  const sagaId = randomUUID();
  await sa.publish('user.deleted', leaving.id, { ...userData(leaving, { active: false, tokenVersion: 1 }), sagaId }, { actorId: admin.id, correlationId: sagaId });
  const step = await eventually(async () => (await outbox(sagaId)).find((e) => e.type === 'sales-activity.saga_step'));
  expect(step.envelope.data).toMatchObject({ sagaType: 'user-deletion', subjectId: leaving.id, step: 'sales-activity.remove-activities', status: 'DONE' });

  const rows = await sql<{ id: string; status: string; title: string }>(sa, 'select id, status, title from tasks where assignee_id = ?', [leaving.id]);
  expect(rows.filter((r) => r.status !== 'CANCELLED').map((r) => r.id)).toEqual([done]);
  expect(rows).toHaveLength(4);
  for (const id of [todo, doing]) expect((await outbox(id)).map((e) => e.type).at(-1)).toBe('task.cancelled');
  const cancelled = await sql(sa, `select key from outbox where type = 'task.cancelled' and envelope->>'correlationId' = ?`, [sagaId]);
  expect(cancelled).toHaveLength(3);
  const meetings = (await sql<{ id: string }>(sa, 'select id from meetings where rep_id = ?', [leaving.id])).map((m) => m.id);
  expect(meetings).toEqual([past]);
  expect(meetings).not.toContain(upcoming);
});

test('approval.approved → a "Follow up" task for the requester, linked to the customer, due in 3 days', async () => {
  const customerId = await seedCustomer(sa, 'Wonka', rep.id);
  const requestId = randomUUID();
  const data: EventData<'approval.approved'> = {
    requestId,
    customerId,
    requesterId: rep.id,
    approverId: manager.id,
    title: 'Discount 10%',
    amount: 1200,
    status: 'APPROVED',
    comment: 'ok',
    requestedAt: new Date(Date.now() - 3_600_000).toISOString(),
    decidedAt: new Date().toISOString(),
  };
  const env = await sa.publish('approval.approved', requestId, data, { actorId: manager.id });
  const row = await eventually(
    async () =>
      (
        await sql<{ id: string; title: string; assignee_id: string; customer_id: string; due_at: Date; priority: string }>(
          sa,
          `select * from tasks where customer_id = ? and title like 'Follow up:%'`,
          [customerId],
        )
      )[0],
  );
  expect(row).toMatchObject({ title: 'Follow up: Discount 10%', assignee_id: rep.id, customer_id: customerId, priority: 'MEDIUM' });
  expect(new Date(row.due_at).getTime() - new Date(env.occurredAt).getTime()).toBe(3 * 86_400_000);
  expect((await rep.gql(TASKS_OF, { id: row.id })).data.task).toEqual({ id: row.id, status: 'TODO' });
  expect((await outbox(row.id)).map((e) => e.type)).toEqual(['task.created']);
});

test('due-soon job: one task.due_soon per task per due date however often it runs; a new due date re-arms it', async () => {
  const runtime = sa.runtime;
  const inHours = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();
  const create = async (title: string, dueAt: string | null) => (await rep.gql(CREATE_TASK, { input: { title, dueAt } })).data.createTask.id as string;
  const soon = await create('soon', inHours(2));
  const later = await create('later', inHours(48));
  const undated = await create('undated', null);
  const closed = await create('closed', inHours(1));
  await rep.gql(COMPLETE_TASK, { id: closed });
  const dueSoon = async (id: string) => (await outbox(id)).filter((e) => e.type === 'task.due_soon');

  await runDueSoon(runtime);
  await runDueSoon(runtime);
  await Promise.all([runDueSoon(runtime), runDueSoon(runtime)]); // two replicas at once
  const first = await dueSoon(soon);
  expect(first).toHaveLength(1);
  expect(first[0]!.envelope.data).toMatchObject({ taskId: soon, assigneeId: rep.id, status: 'TODO' });
  for (const id of [later, undated, closed]) expect(await dueSoon(id)).toEqual([]);
  // the job bookkeeping does not bump the version: the task is still changeable
  const moved = await rep.gql(UPDATE_TASK, { id: soon, input: { dueAt: inHours(3) } });
  expect(moved.errors).toBeUndefined();
  await runDueSoon(runtime);
  await runDueSoon(runtime);
  const second = await dueSoon(soon);
  expect(second).toHaveLength(2);
  expect((second[1]!.envelope.data as { dueAt: string }).dueAt).toBe(moved.data.updateTask.dueAt);
  // the later task, once due within 24 h, gets its event
  await rep.gql(UPDATE_TASK, { id: later, input: { dueAt: inHours(20) } });
  await runDueSoon(runtime);
  expect(await dueSoon(later)).toHaveLength(1);
});
