/**
 * The entity side of the subgraph, called as the gateway calls it (signed identity straight to the
 * subgraph): `_entities` for Meeting, Task and the Customer / User extensions, filtered per caller,
 * and batched so a query over 50 customers costs the same SQL statements as one over 5.
 */
import { eventually, startTestSubgraph, type TestCaller, type TestSubgraph } from '@crm/testing';
import { salesActivitySubgraph } from '../src';
import { CREATE_TASK, RECORD_MEETING, customerData, publishCustomerEvent, seedCustomer, sql } from './helpers';

let sa: TestSubgraph;
let repA: TestCaller;
let repB: TestCaller;
let manager: TestCaller;
let compliance: TestCaller;

beforeAll(async () => {
  // Long job interval: the due-soon job stays out of the statement counts.
  sa = await startTestSubgraph(salesActivitySubgraph, { env: { OUTBOX_POLL_MS: '600000', DUE_SOON_INTERVAL_MS: '3600000' } });
  repA = sa.user('SALES');
  repB = sa.user('SALES');
  manager = sa.user('MANAGER');
  compliance = sa.user('COMPLIANCE');
}, 300_000); // a loaded shared machine can take minutes to start a subgraph
afterAll(async () => {
  await sa?.stop();
});

const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) {
  __typename
  ... on Task { id title status assignee { id } customer { id } }
  ... on Meeting { id summary rep { id } meetingCustomer: customer { id } }
  ... on Customer { id tasks { totalCount edges { node { id title } } } meetings { totalCount edges { node { id } } } }
  ... on User { id tasks { totalCount } }
} }`;

test('_entities: Task, Meeting, Customer and User filtered per caller', async () => {
  const customerId = await seedCustomer(sa, 'Initech', repA.id);
  // the onboarding task of repA is the first task on the customer
  await eventually(async () => (await sql(sa, 'select id from tasks where customer_id = ?', [customerId])).length === 1);
  const taskA = (await repA.gql(CREATE_TASK, { input: { title: 'A task', customerId } })).data.createTask.id as string;
  const taskB = (await manager.gql(CREATE_TASK, { input: { title: 'B task', customerId, assigneeId: repB.id } })).data.createTask.id as string;
  const meetingA = (await repA.gql(RECORD_MEETING, { input: { customerId, startsAt: '2026-11-02T10:00:00Z', summary: 'Kick-off' } })).data.recordMeeting.id as string;

  const reps = [
    { __typename: 'Task', id: taskA },
    { __typename: 'Meeting', id: meetingA },
    { __typename: 'Customer', id: customerId },
    { __typename: 'User', id: repA.id },
    { __typename: 'Task', id: 'not-a-uuid' },
  ];

  const asA = await sa.call(repA.identity, ENTITIES, { r: reps });
  expect(asA.errors).toBeUndefined();
  const [task, meeting, customer, user, junk] = asA.data._entities;
  expect(task).toMatchObject({ __typename: 'Task', id: taskA, title: 'A task', assignee: { id: repA.id }, customer: { id: customerId } });
  expect(meeting).toMatchObject({ __typename: 'Meeting', id: meetingA, summary: 'Kick-off', rep: { id: repA.id } });
  expect(customer.tasks.totalCount).toBe(2); // onboarding + "A task"; not B's
  expect(customer.tasks.edges.map((e: any) => e.node.id)).not.toContain(taskB);
  expect(customer.meetings.totalCount).toBe(1);
  expect(user.tasks.totalCount).toBe(2);
  expect(junk).toBeNull();

  // repB: none of repA's things, only their own task on the customer; repA's task list is empty
  const asB = await sa.call(repB.identity, ENTITIES, { r: reps });
  expect(asB.errors).toBeUndefined();
  const [bTask, bMeeting, bCustomer, bUser] = asB.data._entities;
  expect(bTask).toBeNull();
  expect(bMeeting).toBeNull();
  expect(bCustomer.tasks.totalCount).toBe(1);
  expect(bCustomer.tasks.edges.map((e: any) => e.node.id)).toEqual([taskB]);
  expect(bCustomer.meetings.totalCount).toBe(0);
  expect(bUser.tasks.totalCount).toBe(0);

  // a SALES user with nothing on the customer gets none of its tasks
  const stranger = sa.user('SALES');
  const none = await sa.call(
    stranger.identity,
    `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { tasks { totalCount edges { node { id } } } meetings { totalCount } } } }`,
    { r: [{ __typename: 'Customer', id: customerId }] },
  );
  expect(none.errors).toBeUndefined();
  expect(none.data._entities[0]).toEqual({ tasks: { totalCount: 0, edges: [] }, meetings: { totalCount: 0 } });

  for (const reader of [manager, compliance]) {
    const all = await sa.call(reader.identity, ENTITIES, { r: reps });
    expect(all.errors).toBeUndefined();
    expect(all.data._entities[0].id).toBe(taskA);
    expect(all.data._entities[1].id).toBe(meetingA);
    expect(all.data._entities[2].tasks.totalCount).toBe(3);
    expect(all.data._entities[2].meetings.totalCount).toBe(1);
  }

  // Customer.tasks reached from a Task (the gateway's path; e2e covers it through the gateway)
  const viaGateway = await repB.gql(`query($id: ID!) { task(id: $id) { customer { tasks { totalCount } meetings { totalCount } } } }`, { id: taskB });
  expect(viaGateway.data.task.customer).toEqual({ tasks: { totalCount: 1 }, meetings: { totalCount: 0 } });
});

test('unsigned or forged calls to the subgraph are refused', async () => {
  const res = await fetch(sa.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ myTasks { totalCount } }' }),
  });
  expect(res.status).toBe(401);
});

test('statement count of _entities Customer { meetings tasks } is the same for 5 and 50 customers', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) {
    const data = customerData(`Batch ${i}`, repA.id);
    await publishCustomerEvent(sa, 'customer.created', data, repA.id);
    ids.push(data.customerId);
  }
  await eventually(async () => (await sql(sa, 'select count(*)::int as n from tasks where customer_id = any(?::uuid[])', [`{${ids.join(',')}}`]))[0]?.n === 50);
  for (const id of ids.slice(0, 50).filter((_, i) => i % 5 === 0)) {
    expect((await repA.gql(RECORD_MEETING, { input: { customerId: id, startsAt: '2026-11-03T10:00:00Z', summary: 'Visit' } })).errors).toBeUndefined();
  }
  const db = sa.db;
  const knex = db.orm.em.getConnection().getKnex();
  // db.statementCount() counts request-driven SQL only (the relay, consumers and jobs run in the kit's
  // background context); the knex listener double-checks it by leaving out the relay's statements.
  const isRelay = (q: string) => /outbox|pg_try_advisory_xact_lock|^(begin|commit|rollback)/i.test(q.trim());
  const Q = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { meetings { totalCount } tasks { edges { node { title } } } } } }`;
  const measure = async (n: number, who: TestCaller) => {
    const seen: string[] = [];
    const listener = (q: { sql: string }) => seen.push(q.sql);
    knex.on('query', listener);
    const before = db.statementCount();
    const r = await sa.call(who.identity, Q, { r: ids.slice(0, n).map((id) => ({ __typename: 'Customer', id })) });
    const raw = db.statementCount() - before;
    knex.off('query', listener);
    expect(r.errors).toBeUndefined();
    expect(r.data._entities).toHaveLength(n);
    expect(r.data._entities.every((c: any) => c.tasks.edges[0]?.node.title.startsWith('First contact: Batch'))).toBe(true);
    // meetings { totalCount } alone is a count(*) per customer, in the caller's scope: every 5th customer has one meeting by repA
    expect(r.data._entities.map((c: any) => c.meetings.totalCount)).toEqual(ids.slice(0, n).map((_, i) => (i % 5 === 0 ? 1 : 0)));
    return { own: seen.filter((q) => !isRelay(q)).length, raw };
  };
  for (const who of [manager, repA]) {
    const five = await measure(5, who);
    const fifty = await measure(50, who);

    console.log(`_entities Customer{meetings tasks} statements (${who.role}): 5 → ${five.own} (statementCount delta ${five.raw}), 50 → ${fifty.own} (delta ${fifty.raw})`);
    expect(fifty.raw).toBe(five.raw);
    expect(five.raw).toBe(2); // one windowed query for meetings, one for tasks
    expect(fifty.own).toBe(five.own);
  }
});
