/**
 * Meetings and tasks, called as the gateway calls the subgraph (signed identities): recording and
 * reading, the task state machine (every CONFLICT), a race of two completions, and who may see and
 * change what.
 */
import { randomUUID } from 'node:crypto';
import { startTestSubgraph, type TestCaller, type TestSubgraph } from '@crm/testing';
import { salesActivitySubgraph } from '../src';
import { COMPLETE_TASK, CREATE_TASK, RECORD_MEETING, UPDATE_TASK, code, publishCustomerEvent, customerData, seedCustomer, sql } from './helpers';

let sa: TestSubgraph;
let sales: TestCaller;
let otherSales: TestCaller;
let manager: TestCaller;
let admin: TestCaller;
let compliance: TestCaller;
let customerId: string; // assigned to `sales`
let otherCustomerId: string; // assigned to `otherSales`

beforeAll(async () => {
  sa = await startTestSubgraph(salesActivitySubgraph);
  sales = sa.user('SALES');
  otherSales = sa.user('SALES');
  manager = sa.user('MANAGER');
  compliance = sa.user('COMPLIANCE');
  admin = sa.user('ADMIN');
  customerId = await seedCustomer(sa, 'Acme', sales.id);
  otherCustomerId = await seedCustomer(sa, 'Globex', otherSales.id);
}, 300_000); // a loaded shared machine can take minutes to start a subgraph
afterAll(async () => {
  await sa?.stop();
});

const createTask = (u: TestCaller, input: Record<string, unknown>) => u.gql(CREATE_TASK, { input });
const updateTask = (u: TestCaller, id: string, input: Record<string, unknown>) => u.gql(UPDATE_TASK, { id, input });
const completeTask = (u: TestCaller, id: string) => u.gql(COMPLETE_TASK, { id });
async function newTaskId(u: TestCaller, input: Record<string, unknown> = {}): Promise<string> {
  const r = await createTask(u, { title: 'Call back', ...input });
  expect(r.errors).toBeUndefined();
  return r.data.createTask.id;
}

describe('meetings', () => {
  test('record and read a meeting; it shows on the customer', async () => {
    const startsAt = '2026-11-20T10:00:00.000Z';
    const r = await sales.gql(RECORD_MEETING, { input: { customerId, startsAt, summary: 'Intro call', nextAction: 'Send deck' } });
    expect(r.errors).toBeUndefined();
    const m = r.data.recordMeeting;
    expect(m).toMatchObject({ startsAt, summary: 'Intro call', nextAction: 'Send deck', customer: { id: customerId }, rep: { id: sales.id } });
    const read = await sales.gql(`query($id: ID!) { meeting(id: $id) { id summary rep { id } customer { id meetings { totalCount edges { node { id } } } } } }`, { id: m.id });
    expect(read.errors).toBeUndefined();
    expect(read.data.meeting.customer.meetings.totalCount).toBe(1);
    expect(read.data.meeting.customer.meetings.edges[0].node.id).toBe(m.id);
    const events = await sql<{ type: string }>(sa, `select type from outbox where key = ?`, [m.id]);
    expect(events.map((e) => e.type)).toEqual(['meeting.created']);
  });

  test('updateMeeting / deleteMeeting: the rep or a MANAGER; events with the changes; a meeting removed by a saga cannot be touched', async () => {
    const UPDATE = 'mutation($id: ID!, $input: UpdateMeetingInput!) { updateMeeting(id: $id, input: $input) { id summary startsAt nextAction } }';
    const DELETE = 'mutation($id: ID!) { deleteMeeting(id: $id) }';
    const m = (await sales.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-11-21T10:00:00.000Z', summary: 'Demo', nextAction: 'Call' } })).data.recordMeeting;
    expect(code(await otherSales.gql(UPDATE, { id: m.id, input: { summary: 'x' } }))).toBe('NOT_FOUND');
    expect(code(await compliance.gql(DELETE, { id: m.id }))).toBe('FORBIDDEN');
    // no change: no event
    expect((await sales.gql(UPDATE, { id: m.id, input: { summary: 'Demo' } })).data.updateMeeting.summary).toBe('Demo');
    const r = await manager.gql(UPDATE, { id: m.id, input: { summary: 'Demo, part 1', nextAction: null } });
    expect(r.data.updateMeeting).toEqual({ id: m.id, summary: 'Demo, part 1', startsAt: '2026-11-21T10:00:00.000Z', nextAction: null });
    const updated = await sql<{ type: string; envelope: { data: { changes?: string[]; summary: string } } }>(
      sa,
      `select type, envelope from outbox where key = ? order by created_at`,
      [m.id],
    );
    expect(updated.map((e) => e.type)).toEqual(['meeting.created', 'meeting.updated']);
    expect(updated[1]!.envelope.data).toMatchObject({ summary: 'Demo, part 1', changes: ['summary', 'nextAction'] });

    // hidden by a customer-deletion saga: as good as gone
    const hidden = (await sales.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-11-22T10:00:00.000Z', summary: 'Hidden' } })).data.recordMeeting;
    await sql(sa, 'update meetings set removed_by_saga = ? where id = ?', [randomUUID(), hidden.id]);
    expect(code(await manager.gql(DELETE, { id: hidden.id }))).toBe('NOT_FOUND');
    expect(await sql(sa, 'select id from meetings where id = ?', [hidden.id])).toHaveLength(1);

    expect((await sales.gql(DELETE, { id: m.id })).data.deleteMeeting).toBe(m.id);
    expect(await sql(sa, 'select id from meetings where id = ?', [m.id])).toEqual([]);
    const all = await sql<{ type: string }>(sa, `select type from outbox where key = ? order by created_at`, [m.id]);
    expect(all.map((e) => e.type)).toEqual(['meeting.created', 'meeting.updated', 'meeting.deleted']);
  });

  test('unknown, deleted and not-my customers are NOT_FOUND on customerId; bad input names the field', async () => {
    const base = { startsAt: '2026-11-20T10:00:00Z', summary: 'x' };
    const unknown = await sales.gql(RECORD_MEETING, { input: { ...base, customerId: randomUUID() } });
    expect(code(unknown)).toBe('NOT_FOUND');
    expect(unknown.errors?.[0]?.extensions?.field).toBe('customerId');
    const notMine = await sales.gql(RECORD_MEETING, { input: { ...base, customerId: otherCustomerId } });
    expect(code(notMine)).toBe('NOT_FOUND');
    // the same customer is fine for a manager
    expect((await manager.gql(RECORD_MEETING, { input: { ...base, customerId: otherCustomerId } })).errors).toBeUndefined();
    const empty = await sales.gql(RECORD_MEETING, { input: { ...base, customerId, summary: '  ' } });
    expect(code(empty)).toBe('BAD_USER_INPUT');
    expect(empty.errors?.[0]?.extensions?.field).toBe('summary');
    const badId = await sales.gql(RECORD_MEETING, { input: { ...base, customerId: 'nope' } });
    expect(badId.errors?.[0]?.extensions?.field).toBe('customerId');

    const gone = customerData('Gone Inc', sales.id);
    await publishCustomerEvent(sa, 'customer.created', gone, sales.id);
    await publishCustomerEvent(sa, 'customer.deleted', { ...gone, sagaId: randomUUID(), requestedBy: manager.id }, manager.id);
    await import('@crm/testing').then(({ eventually }) =>
      eventually(async () => (await sql<{ deleted: boolean }>(sa, 'select deleted from customer_refs where id = ?', [gone.customerId]))[0]?.deleted === true),
    );
    const deleted = await manager.gql(RECORD_MEETING, { input: { ...base, customerId: gone.customerId } });
    expect(code(deleted)).toBe('NOT_FOUND');
    const task = await manager.gql(CREATE_TASK, { input: { title: 't', customerId: gone.customerId } });
    expect(code(task)).toBe('NOT_FOUND');
    expect(task.errors?.[0]?.extensions?.field).toBe('customerId');
  });
});

describe('task lifecycle', () => {
  test('create with defaults: MEDIUM, TODO, assigned to the caller; task.created staged', async () => {
    const r = await createTask(sales, { title: '  Prepare offer ', customerId, dueAt: '2026-12-01T09:00:00Z' });
    expect(r.errors).toBeUndefined();
    expect(r.data.createTask).toMatchObject({
      title: 'Prepare offer',
      status: 'TODO',
      priority: 'MEDIUM',
      dueAt: '2026-12-01T09:00:00.000Z',
      completedAt: null,
      customer: { id: customerId },
      assignee: { id: sales.id },
    });
    const events = await sql<{ type: string }>(sa, 'select type from outbox where key = ?', [r.data.createTask.id]);
    expect(events.map((e) => e.type)).toEqual(['task.created']);
  });

  test('TODO → IN_PROGRESS → COMPLETED, with events; completedAt only on completion', async () => {
    const id = await newTaskId(sales);
    const started = await updateTask(sales, id, { status: 'IN_PROGRESS', title: 'Call back today' });
    expect(started.errors).toBeUndefined();
    expect(started.data.updateTask).toMatchObject({ status: 'IN_PROGRESS', title: 'Call back today', completedAt: null });
    const done = await completeTask(sales, id);
    expect(done.errors).toBeUndefined();
    expect(done.data.completeTask.status).toBe('COMPLETED');
    expect(new Date(done.data.completeTask.completedAt).getTime()).toBeGreaterThan(0);
    const events = await sql<{ type: string }>(sa, 'select type from outbox where key = ? order by created_at', [id]);
    expect(events.map((e) => e.type)).toEqual(['task.created', 'task.updated', 'task.completed']);
  });

  test('TODO → COMPLETED directly (completeTask and updateTask) is allowed', async () => {
    const a = await newTaskId(sales);
    expect((await completeTask(sales, a)).data.completeTask.status).toBe('COMPLETED');
    const b = await newTaskId(sales);
    const r = await updateTask(sales, b, { status: 'COMPLETED' });
    expect(r.data.updateTask.status).toBe('COMPLETED');
    expect(r.data.updateTask.completedAt).not.toBeNull();
  });

  test('TODO and IN_PROGRESS can be cancelled (task.cancelled); completedAt stays null', async () => {
    const a = await newTaskId(sales);
    const r = await updateTask(sales, a, { status: 'CANCELLED' });
    expect(r.data.updateTask).toMatchObject({ status: 'CANCELLED', completedAt: null });
    const b = await newTaskId(sales);
    await updateTask(sales, b, { status: 'IN_PROGRESS' });
    expect((await updateTask(sales, b, { status: 'CANCELLED' })).data.updateTask.status).toBe('CANCELLED');
    const events = await sql<{ type: string }>(sa, 'select type from outbox where key = ? order by created_at', [b]);
    expect(events.map((e) => e.type)).toEqual(['task.created', 'task.updated', 'task.cancelled']);
  });

  test('every illegal transition is a CONFLICT and changes nothing', async () => {
    const completed = await newTaskId(sales);
    await completeTask(sales, completed);
    const cancelled = await newTaskId(sales);
    await updateTask(sales, cancelled, { status: 'CANCELLED' });
    const inProgress = await newTaskId(sales);
    await updateTask(sales, inProgress, { status: 'IN_PROGRESS' });

    const attempts: [string, () => Promise<{ errors?: { extensions?: { code?: string } }[] }>][] = [
      ['IN_PROGRESS → TODO', () => updateTask(sales, inProgress, { status: 'TODO' })],
      ['COMPLETED → complete', () => completeTask(sales, completed)],
      ['COMPLETED → TODO', () => updateTask(sales, completed, { status: 'TODO' })],
      ['COMPLETED → IN_PROGRESS', () => updateTask(sales, completed, { status: 'IN_PROGRESS' })],
      ['COMPLETED → CANCELLED', () => updateTask(sales, completed, { status: 'CANCELLED' })],
      ['COMPLETED → COMPLETED', () => updateTask(sales, completed, { status: 'COMPLETED' })],
      ['COMPLETED edit', () => updateTask(sales, completed, { title: 'new title' })],
      ['CANCELLED → complete', () => completeTask(sales, cancelled)],
      ['CANCELLED → TODO', () => updateTask(sales, cancelled, { status: 'TODO' })],
      ['CANCELLED → IN_PROGRESS', () => updateTask(sales, cancelled, { status: 'IN_PROGRESS' })],
      ['CANCELLED → COMPLETED', () => updateTask(sales, cancelled, { status: 'COMPLETED' })],
      ['CANCELLED edit', () => updateTask(sales, cancelled, { dueAt: '2027-01-01T00:00:00Z' })],
    ];
    for (const [name, attempt] of attempts) {
      const r = await attempt();
      expect([name, code(r)]).toEqual([name, 'CONFLICT']);
    }
    const rows = await sql<{ id: string; status: string; title: string }>(sa, 'select id, status, title from tasks where id in (?, ?, ?)', [completed, cancelled, inProgress]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(completed)).toMatchObject({ status: 'COMPLETED', title: 'Call back' });
    expect(byId.get(cancelled)?.status).toBe('CANCELLED');
    expect(byId.get(inProgress)?.status).toBe('IN_PROGRESS');
  });

  test('two concurrent completeTask: exactly one succeeds, one task.completed', async () => {
    for (let round = 0; round < 3; round++) {
      const id = await newTaskId(sales);
      const results = await Promise.all([completeTask(sales, id), completeTask(manager, id)]);
      const ok = results.filter((r) => !r.errors);
      const failed = results.filter((r) => r.errors);
      expect(ok).toHaveLength(1);
      expect(failed.map(code)).toEqual(['CONFLICT']);
      const events = await sql<{ type: string }>(sa, `select type from outbox where key = ? and type = 'task.completed'`, [id]);
      expect(events).toHaveLength(1);
    }
  });

  test('a date Postgres cannot store (the year 0) is BAD_USER_INPUT and writes nothing', async () => {
    const before = await sql<{ n: number }>(sa, 'select (select count(*) from tasks)::int + (select count(*) from meetings)::int + (select count(*) from outbox)::int as n');
    // year 0 as written, and as reached through an offset (0001-01-01T00:00+01:00 is 0000-12-31T23:00Z)
    for (const at of ['0000-06-01T00:00:00Z', '0001-01-01T00:00:00+01:00']) {
      const task = await createTask(sales, { title: 'Long ago', dueAt: at });
      expect([code(task), task.errors?.[0]?.message]).toEqual(['BAD_USER_INPUT', expect.stringMatching(/0001-01-01/)]);
      const meeting = await sales.gql(RECORD_MEETING, { input: { customerId, startsAt: at, summary: 'Long ago' } });
      expect(code(meeting)).toBe('BAD_USER_INPUT');
      const inline = await sales.gql(`mutation { createTask(input: { title: "Long ago", dueAt: "${at}" }) { id } }`);
      expect(code(inline)).toMatch(/BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED/);
    }
    // the first instant of the year 1 is still a date like any other
    const first = await createTask(sales, { title: 'Year one', dueAt: '0001-01-01T00:00:00Z' });
    expect(first.errors).toBeUndefined();
    expect(first.data.createTask.dueAt).toBe('0001-01-01T00:00:00.000Z');
    const after = await sql<{ n: number }>(sa, 'select (select count(*) from tasks)::int + (select count(*) from meetings)::int + (select count(*) from outbox)::int as n');
    expect(after[0]!.n).toBe(before[0]!.n + 2); // the year-one task and its task.created event
  });

  test('updateTask: fields change, explicit null clears, bad input names the field', async () => {
    const id = await newTaskId(sales, { description: 'd', dueAt: '2026-12-24T12:00:00Z', priority: 'LOW' });
    const r = await updateTask(sales, id, { priority: 'URGENT', description: null, dueAt: null });
    expect(r.errors).toBeUndefined();
    expect(r.data.updateTask).toMatchObject({ priority: 'URGENT', description: null, dueAt: null, status: 'TODO' });
    const bad = await updateTask(sales, id, { title: '' });
    expect(code(bad)).toBe('BAD_USER_INPUT');
    expect(bad.errors?.[0]?.extensions?.field).toBe('title');
    const missing = await updateTask(sales, randomUUID(), { title: 'x' });
    expect(code(missing)).toBe('NOT_FOUND');
  });

  test('myTasks pages with opaque cursors and filters by status', async () => {
    const u = sa.user('SALES');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await newTaskId(u, { title: `T${i}` }));
    await completeTask(u, ids[0]!);
    const Q = `query($s: TaskStatus, $first: Int, $after: String) { myTasks(status: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id title } } } }`;
    const p1 = await u.gql(Q, { first: 2 });
    expect(p1.data.myTasks.totalCount).toBe(5);
    expect(p1.data.myTasks.edges.map((e: any) => e.node.title)).toEqual(['T4', 'T3']);
    expect(p1.data.myTasks.pageInfo.hasNextPage).toBe(true);
    const p2 = await u.gql(Q, { first: 10, after: p1.data.myTasks.pageInfo.endCursor });
    expect(p2.data.myTasks.edges.map((e: any) => e.node.title)).toEqual(['T2', 'T1', 'T0']);
    expect(p2.data.myTasks.pageInfo.hasNextPage).toBe(false);
    const todo = await u.gql(Q, { s: 'TODO' });
    expect(todo.data.myTasks.totalCount).toBe(4);
    expect(code(await u.gql(Q, { first: 101 }))).toBe('BAD_USER_INPUT');
    expect(code(await u.gql(Q, { after: 'garbage' }))).toBe('BAD_USER_INPUT');
  });
});

describe('authorization', () => {
  test('SALES see and change only their own tasks and meetings', async () => {
    const mine = await newTaskId(sales, { customerId });
    const theirs = await newTaskId(otherSales, { customerId: otherCustomerId });
    const meeting = (await otherSales.gql(RECORD_MEETING, { input: { customerId: otherCustomerId, startsAt: '2026-11-01T09:00:00Z', summary: 'secret' } })).data.recordMeeting.id;

    const Q = `query($t: ID!, $m: ID!) { task(id: $t) { id title } meeting(id: $m) { id summary } }`;
    const peek = await sales.gql(Q, { t: theirs, m: meeting });
    expect(peek.errors).toBeUndefined();
    expect(peek.data).toEqual({ task: null, meeting: null });
    expect(code(await completeTask(sales, theirs))).toBe('NOT_FOUND');
    expect(code(await updateTask(sales, theirs, { title: 'mine now' }))).toBe('NOT_FOUND');
    expect((await sales.gql(Q, { t: mine, m: meeting })).data.task.id).toBe(mine);

    // User.tasks / Customer.tasks / Customer.meetings of others: empty for SALES
    const nested = await sales.gql(`query($t: ID!) { task(id: $t) { assignee { id tasks { totalCount } } customer { id tasks { totalCount } meetings { totalCount } } } }`, {
      t: mine,
    });
    expect(nested.errors).toBeUndefined();
    expect(nested.data.task.assignee.tasks.totalCount).toBeGreaterThan(0);
  });

  test('a SALES user may not assign tasks to others or use customers not theirs; MANAGER/ADMIN may', async () => {
    expect(code(await createTask(sales, { title: 'x', assigneeId: otherSales.id }))).toBe('FORBIDDEN');
    expect(code(await createTask(sales, { title: 'x', customerId: otherCustomerId }))).toBe('NOT_FOUND');
    const byManager = await createTask(manager, { title: 'For you', assigneeId: sales.id, customerId: otherCustomerId });
    expect(byManager.errors).toBeUndefined();
    expect(byManager.data.createTask.assignee.id).toBe(sales.id);
    const byAdmin = await createTask(admin, { title: 'For you too', assigneeId: otherSales.id });
    expect(byAdmin.data.createTask.assignee.id).toBe(otherSales.id);
    const badAssignee = await createTask(manager, { title: 'x', assigneeId: 'not-a-uuid' });
    expect(code(badAssignee)).toBe('BAD_USER_INPUT');
    expect(badAssignee.errors?.[0]?.extensions?.field).toBe('assigneeId');
    // the assignee sees it; the manager (who created it) can change it
    expect((await sales.gql(`query($id: ID!) { task(id: $id) { id } }`, { id: byManager.data.createTask.id })).data.task.id).toBe(byManager.data.createTask.id);
    expect((await updateTask(manager, byManager.data.createTask.id, { status: 'IN_PROGRESS' })).data.updateTask.status).toBe('IN_PROGRESS');
  });

  test('MANAGER and ADMIN read and change everything; COMPLIANCE reads everything and writes nothing', async () => {
    const theirs = await newTaskId(otherSales, { customerId: otherCustomerId });
    const Q = `query($id: ID!) { task(id: $id) { id } }`;
    for (const reader of [manager, admin, compliance]) {
      expect((await reader.gql(Q, { id: theirs })).data.task.id).toBe(theirs);
      const listed = await reader.gql(`query($id: ID!) { task(id: $id) { customer { tasks { totalCount } } assignee { tasks { totalCount } } } }`, { id: theirs });
      expect(listed.data.task.customer.tasks.totalCount).toBeGreaterThan(0);
      expect(listed.data.task.assignee.tasks.totalCount).toBeGreaterThan(0);
    }
    expect(code(await createTask(compliance, { title: 'x' }))).toBe('FORBIDDEN');
    expect(code(await updateTask(compliance, theirs, { title: 'x' }))).toBe('FORBIDDEN');
    expect(code(await completeTask(compliance, theirs))).toBe('FORBIDDEN');
    expect(code(await compliance.gql(RECORD_MEETING, { input: { customerId: otherCustomerId, startsAt: '2026-11-01T09:00:00Z', summary: 'x' } }))).toBe('FORBIDDEN');
    expect((await updateTask(admin, theirs, { priority: 'HIGH' })).data.updateTask.priority).toBe('HIGH');
    expect((await completeTask(manager, theirs)).data.completeTask.status).toBe('COMPLETED');
  });

  test('anonymous callers are refused', async () => {
    const r = await sa.call(null, `{ myTasks { totalCount } }`);
    expect(code(r)).toBe('UNAUTHENTICATED');
  });
});
