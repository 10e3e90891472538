/**
 * Notifications from events: who gets what, exactly once, and only the recipient can see or
 * change them. The analytics subgraph alone: events (users included) are published to its bus as
 * their producers would.
 */
import { startTestSubgraph, userData, type TestCaller, type TestSubgraph } from '@crm/testing';
import { analyticsSubgraph } from '../src';
import { eventually, code, consumed, statementsOf, newUsers, notificationsOf, publisher, randomUUID, sql, MY_NOTIFICATIONS } from './helpers';

let an: TestSubgraph;
let bus: ReturnType<typeof publisher>;
let admin: TestCaller;
let m1: TestCaller;
let m2: TestCaller;
let compliance: TestCaller;
let s1: TestCaller;
let s2: TestCaller;

beforeAll(async () => {
  an = await startTestSubgraph(analyticsSubgraph);
  bus = publisher(an);
  [admin, m1, m2, compliance, s1, s2] = (await newUsers(an, 'ADMIN', 'MANAGER', 'MANAGER', 'COMPLIANCE', 'SALES', 'SALES')) as [
    TestCaller,
    TestCaller,
    TestCaller,
    TestCaller,
    TestCaller,
    TestCaller,
  ];
}, 300_000); // a shared 2-core machine can take a while to start a subgraph
afterAll(async () => {
  await an?.stop();
});

const approval = (requestId: string, requesterId: string, status: 'PENDING' | 'APPROVED' | 'REJECTED', extra: Partial<{ approverId: string; comment: string }> = {}) => ({
  requestId,
  customerId: randomUUID(),
  requesterId,
  approverId: extra.approverId ?? null,
  title: 'Discount for Acme',
  amount: 1200,
  status,
  comment: extra.comment ?? null,
  requestedAt: new Date().toISOString(),
  decidedAt: status === 'PENDING' ? null : new Date().toISOString(),
});

const customer = (customerId: string, repId: string | null) => ({ customerId, name: 'Acme Corp', assignedRepId: repId, size: 'SMALL', investmentProfile: 'GROWTH' });
const task = (taskId: string, assigneeId: string, title = 'Call back') => ({
  taskId,
  title,
  assigneeId,
  customerId: null,
  status: 'TODO',
  priority: 'HIGH',
  dueAt: new Date(Date.now() + 3600_000).toISOString(),
});

const about = (entityId: string) => async (u: TestCaller) => (await notificationsOf(u)).filter((n) => n.entityId === entityId);

test('approval.requested notifies every active MANAGER and ADMIN except the requester, once each', async () => {
  const requestId = randomUUID();
  const env = bus.build('approval.requested', requestId, approval(requestId, m2.id, 'PENDING'), { actorId: m2.id });
  await bus.send(env);
  await bus.send(env); // redelivery: no second notification
  const of = about(requestId);
  await eventually(async () => (await of(m1)).length === 1 && (await of(admin)).length === 1);
  const marker = bus.build('approval.requested', requestId, approval(requestId, m2.id, 'PENDING'), { actorId: m2.id });
  // a later event on the same key proves the duplicate was consumed before counting
  await bus.send(marker);
  await consumed(an, marker);
  const mine = await of(m1);
  expect(mine.filter((n) => n.title.includes('Discount')).length).toBeGreaterThanOrEqual(1);
  const byEnvelope = await sql<{ n: number }>(an, 'SELECT count(*)::int AS n FROM notifications WHERE source_event_id = ?', [env.id]);
  // m1 and the admin (m2 requested; SALES and COMPLIANCE are not approvers)
  expect(Number(byEnvelope[0]!.n)).toBe(2);
  expect(mine[0]).toMatchObject({ type: 'APPROVAL_REQUESTED', entityType: 'ApprovalRequest', entityId: requestId, readAt: null, recipient: { id: m1.id } });
  expect(await of(m2)).toEqual([]);
  expect(await of(s1)).toEqual([]);
  expect(await of(compliance)).toEqual([]);
});

test('approval.approved / rejected notify the requester (APPROVAL_DECIDED)', async () => {
  const approved = randomUUID();
  const rejected = randomUUID();
  await bus.publish('approval.approved', approved, approval(approved, s1.id, 'APPROVED', { approverId: m1.id, comment: 'ok' }), { actorId: m1.id });
  await bus.publish('approval.rejected', rejected, approval(rejected, s1.id, 'REJECTED', { approverId: m1.id, comment: 'too much' }), { actorId: m1.id });
  await eventually(async () => (await about(approved)(s1)).length === 1 && (await about(rejected)(s1)).length === 1);
  const [a] = await about(approved)(s1);
  const [r] = await about(rejected)(s1);
  expect(a).toMatchObject({ type: 'APPROVAL_DECIDED', body: 'ok' });
  expect(a!.title).toMatch(/approved/);
  expect(r!.title).toMatch(/rejected/);
  expect(await about(approved)(m1)).toEqual([]);
});

test('customer.created with a rep and customer.reassigned to a new rep notify that rep (CUSTOMER_ASSIGNED)', async () => {
  const c = randomUUID();
  const unassigned = randomUUID();
  await bus.publish('customer.created', c, customer(c, s1.id), { actorId: m1.id });
  await bus.publish('customer.created', unassigned, customer(unassigned, null), { actorId: m1.id });
  await eventually(async () => (await about(c)(s1)).length === 1);
  expect((await about(c)(s1))[0]).toMatchObject({ type: 'CUSTOMER_ASSIGNED', entityType: 'Customer', entityId: c });

  const same = bus.build('customer.reassigned', c, { ...customer(c, s1.id), fromRepId: s1.id, sagaId: null }, { actorId: m1.id });
  const moved = bus.build('customer.reassigned', c, { ...customer(c, s2.id), fromRepId: s1.id, sagaId: null }, { actorId: m1.id });
  await bus.send(same, moved);
  await eventually(async () => (await about(c)(s2)).length === 1);
  await consumed(an, same, moved);
  expect((await about(c)(s1)).length).toBe(1); // "reassigned" to the same rep: nothing new
  const rows = await sql<{ n: number }>(an, 'SELECT count(*)::int AS n FROM notifications WHERE entity_id = ?', [unassigned]);
  expect(Number(rows[0]!.n)).toBe(0);
});

test('task.created for someone else → TASK_ASSIGNED; for oneself → nothing; task.due_soon → TASK_DUE_SOON', async () => {
  const forOther = randomUUID();
  const forSelf = randomUUID();
  await bus.publish('task.created', forSelf, task(forSelf, s2.id), { actorId: s2.id });
  await bus.publish('task.created', forOther, task(forOther, s2.id), { actorId: m1.id });
  const dueSoon = await bus.publish('task.due_soon', forSelf, task(forSelf, s2.id), { actorId: null });
  await eventually(async () => (await about(forOther)(s2)).length === 1 && (await about(forSelf)(s2)).length === 1);
  await consumed(an, dueSoon);
  expect((await about(forOther)(s2))[0]).toMatchObject({ type: 'TASK_ASSIGNED', entityType: 'Task' });
  expect((await about(forSelf)(s2)).map((n) => n.type)).toEqual(['TASK_DUE_SOON']);
});

test('myNotifications pages newest first; unread count, markNotificationRead and markAllNotificationsRead', async () => {
  const [u] = (await newUsers(an, 'SALES')) as [TestCaller];
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const t = randomUUID();
    ids.push(t);
    await bus.publish('task.due_soon', t, task(t, u.id, `Task ${i}`));
  }
  await eventually(async () => (await u.gql('{ unreadNotificationCount }')).data?.unreadNotificationCount === 5);

  const p1 = await u.gql(MY_NOTIFICATIONS, { first: 2 });
  expect(p1.data.myNotifications.totalCount).toBe(5);
  expect(p1.data.myNotifications.pageInfo.hasNextPage).toBe(true);
  const p2 = await u.gql(MY_NOTIFICATIONS, { first: 10, after: p1.data.myNotifications.pageInfo.endCursor });
  expect(p2.data.myNotifications.edges).toHaveLength(3);
  expect(p2.data.myNotifications.pageInfo.hasNextPage).toBe(false);
  const seen = [...p1.data.myNotifications.edges, ...p2.data.myNotifications.edges].map((e: { node: { entityId: string } }) => e.node.entityId);
  expect(new Set(seen).size).toBe(5);
  expect(seen.slice().sort()).toEqual(ids.slice().sort());
  const big = await u.gql(MY_NOTIFICATIONS, { first: 101 });
  expect(code(big)).toBe('BAD_USER_INPUT');

  const target = p1.data.myNotifications.edges[0].node.id as string;
  const read = await u.gql(`mutation($id: ID!) { markNotificationRead(id: $id) { id readAt } }`, { id: target });
  expect(read.errors).toBeUndefined();
  expect(read.data.markNotificationRead.readAt).toBeTruthy();
  expect((await u.gql('{ unreadNotificationCount }')).data.unreadNotificationCount).toBe(4);
  const unread = await u.gql(MY_NOTIFICATIONS, { unreadOnly: true });
  expect(unread.data.myNotifications.totalCount).toBe(4);
  expect(unread.data.myNotifications.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(target);

  // someone else's notification: NOT_FOUND, never its data; through _entities: null
  const other = await s1.gql(`mutation($id: ID!) { markNotificationRead(id: $id) { id title } }`, { id: target });
  expect(code(other)).toBe('NOT_FOUND');
  const bogus = await u.gql(`mutation { markNotificationRead(id: "not-a-uuid") { id } }`);
  expect(code(bogus)).toBe('NOT_FOUND');
  const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Notification { id title } } }`;
  const rep = [{ __typename: 'Notification', id: target }];
  const stranger = await an.call(s1.identity, ENTITIES, { r: rep });
  expect(stranger.errors).toBeUndefined();
  expect(stranger.data._entities).toEqual([null]);
  const owner = await an.call(u.identity, ENTITIES, { r: rep });
  expect(owner.data._entities[0]).toMatchObject({ id: target });
  const unsigned = await fetch(an.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ unreadNotificationCount }' }) });
  expect(unsigned.status).toBe(401);

  const all = await u.gql('mutation { markAllNotificationsRead }');
  expect(all.data.markAllNotificationsRead).toBe(4);
  expect((await u.gql('{ unreadNotificationCount }')).data.unreadNotificationCount).toBe(0);
  expect((await u.gql('mutation { markAllNotificationsRead }')).data.markAllNotificationsRead).toBe(0);
  expect(code(await an.call(null, '{ unreadNotificationCount }'))).toBe('UNAUTHENTICATED');
});

test("user.deleted archives the user's notifications and reports analytics.archive-notifications on the saga", async () => {
  const [victim] = (await newUsers(an, 'SALES')) as [TestCaller];
  const t = randomUUID();
  await bus.publish('task.due_soon', t, task(t, victim.id));
  await eventually(async () => (await notificationsOf(victim)).length === 1);
  const notificationId = (await notificationsOf(victim))[0]!.id;

  // an ADMIN deletes the user in auth: user.deleted and auth's own saga step, as auth publishes them
  const sagaId = randomUUID();
  const cause = { actorId: admin.id, correlationId: sagaId };
  await bus.publish('user.deleted', victim.id, { ...userData(victim, { active: false, tokenVersion: 1 }), sagaId }, cause);
  await bus.publish(
    'user.saga_step',
    sagaId,
    {
      sagaId,
      sagaType: 'user-deletion',
      subjectId: victim.id,
      step: 'auth.deactivate-user',
      status: 'DONE',
      detail: null,
      ends: null,
      expectedSteps: ['auth.deactivate-user', 'customer.reassign-customers', 'sales-activity.remove-activities', 'opportunity.cancel-requests', 'analytics.archive-notifications'],
    },
    cause,
  );
  // deleteUser's result is this Saga entity (the gateway asks analytics): RUNNING whether or not a step has arrived yet
  const del = await admin.gql(`query($r: [_Any!]!) { _entities(representations: $r) { ... on Saga { id status type steps { name } } } }`, {
    r: [{ __typename: 'Saga', id: sagaId }],
  });
  expect(del.errors).toBeUndefined();
  expect(del.data._entities[0]).toMatchObject({ id: sagaId, status: 'RUNNING' });

  const SAGA = `query($id: ID!) { saga(id: $id) { id type status subjectId startedAt endedAt steps { name status at detail } } }`;
  const saga = await eventually(async () => {
    const r = await m1.gql(SAGA, { id: sagaId });
    const s = r.data?.saga;
    return s?.steps.some((x: { name: string }) => x.name === 'analytics.archive-notifications') && s.steps.length >= 2 ? s : null;
  });
  expect(saga).toMatchObject({ id: sagaId, type: 'user-deletion', subjectId: victim.id, status: 'RUNNING', endedAt: null });
  expect(saga.steps.find((x: { name: string }) => x.name === 'analytics.archive-notifications')).toMatchObject({ status: 'DONE', detail: '1 notifications archived' });
  expect(saga.steps.map((x: { name: string }) => x.name)).toContain('auth.deactivate-user');

  // archived: hidden from every read (checked in the database: a deleted user can no longer call the API)
  const rows = await sql<{ archived_at: Date | null }>(an, 'SELECT archived_at FROM notifications WHERE id = ?', [notificationId]);
  expect(rows[0]!.archived_at).not.toBeNull();
  const again = await an.call(victim.identity, '{ unreadNotificationCount myNotifications { totalCount } }');
  expect(again.data).toEqual({ unreadNotificationCount: 0, myNotifications: { totalCount: 0 } });
  // the deleted user is no longer a recipient of approval requests
  const requestId = randomUUID();
  const ev = await bus.publish('approval.requested', requestId, approval(requestId, s1.id, 'PENDING'), { actorId: s1.id });
  await consumed(an, ev);
  expect((await about(requestId)(m1)).length).toBe(1);
});

test('_entities for Notification is batched: the same statements for 5 and 50 representations', async () => {
  const [u] = (await newUsers(an, 'SALES')) as [TestCaller];
  const events = [];
  for (let i = 0; i < 50; i++) {
    const t = randomUUID();
    events.push(bus.build('task.due_soon', t, task(t, u.id, `Batch ${i}`)));
  }
  await bus.send(...events);
  await eventually(async () => (await u.gql('{ unreadNotificationCount }')).data?.unreadNotificationCount === 50);
  const ids = (await notificationsOf(u)).map((n) => n.id);
  const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Notification { id title recipient { id } } } }`;
  const count = async (n: number) =>
    (
      await statementsOf(an, async () => {
        const r = await an.call(u.identity, ENTITIES, { r: ids.slice(0, n).map((id) => ({ __typename: 'Notification', id })) });
        expect(r.data._entities.filter(Boolean)).toHaveLength(n);
      })
    ).length;
  const five = await count(5);
  const fifty = await count(50);
  expect(fifty).toBe(five);
  expect(five).toBe(1); // one IN query, scoped to the caller
});

test("customer.deleted archives the notifications about the customer (its own, its tasks', its requests'); customer.restored of that saga brings back those of users still active", async () => {
  const [rep, leaver] = (await newUsers(an, 'SALES', 'SALES')) as [TestCaller, TestCaller];
  const customerId = randomUUID();
  const otherCustomer = randomUUID();
  const taskId = randomUUID();
  const requestId = randomUUID();
  const events = [
    bus.build('customer.created', customerId, customer(customerId, rep.id), { actorId: m1.id }),
    bus.build('customer.created', otherCustomer, customer(otherCustomer, rep.id), { actorId: m1.id }),
    bus.build('task.created', taskId, { ...task(taskId, rep.id), customerId }, { actorId: m1.id }),
    bus.build('approval.approved', requestId, { ...approval(requestId, leaver.id, 'APPROVED', { approverId: m1.id }), customerId }, { actorId: m1.id }),
  ];
  await bus.send(...events);
  await consumed(an, ...events);
  const mine = async (u: TestCaller) => (await notificationsOf(u)).map((n) => n.entityId).sort();
  expect(await mine(rep)).toEqual(expect.arrayContaining([customerId, otherCustomer, taskId]));
  expect(await mine(leaver)).toEqual(expect.arrayContaining([requestId]));

  const sagaId = randomUUID();
  const deleted = bus.build('customer.deleted', customerId, { ...customer(customerId, rep.id), sagaId, requestedBy: m1.id }, { actorId: m1.id, correlationId: sagaId });
  await bus.send(deleted);
  await consumed(an, deleted);
  expect(await mine(rep)).not.toContain(customerId);
  expect(await mine(rep)).not.toContain(taskId);
  expect(await mine(rep)).toContain(otherCustomer); // another customer's stay
  expect(await mine(leaver)).not.toContain(requestId);
  const [archived] = await sql<{ detail: string }>(an, `SELECT detail FROM saga_steps WHERE saga_id = ? AND name = 'analytics.archive-notifications' AND status = 'DONE'`, [
    sagaId,
  ]);
  expect(archived?.detail).toBe('3 notifications archived');

  // the requester leaves meanwhile: theirs stay archived when the deletion is compensated
  const gone = bus.build('user.deleted', leaver.id, { ...userData(leaver, { active: false }), sagaId: randomUUID() }, { actorId: admin.id });
  await bus.send(gone);
  await consumed(an, gone);
  const restored = bus.build('customer.restored', customerId, { ...customer(customerId, rep.id), sagaId }, { actorId: null, correlationId: sagaId });
  // a restoration of another saga changes nothing
  const otherSaga = bus.build('customer.restored', customerId, { ...customer(customerId, rep.id), sagaId: randomUUID() }, { actorId: null });
  await bus.send(otherSaga);
  await consumed(an, otherSaga);
  expect(await mine(rep)).not.toContain(customerId);
  await bus.send(restored);
  await consumed(an, restored);
  expect(await mine(rep)).toEqual(expect.arrayContaining([customerId, taskId, otherCustomer]));
  expect(await sql(an, 'SELECT id FROM notifications WHERE entity_id = ? AND archived_at IS NULL', [requestId])).toEqual([]);
  const [back] = await sql<{ detail: string }>(an, `SELECT detail FROM saga_steps WHERE saga_id = ? AND name = 'analytics.restore-notifications'`, [sagaId]);
  expect(back?.detail).toBe('2 notifications restored');
});

test("deleteNotification: the recipient's own only; gone for good for them, yet still a live-feed resume cursor", async () => {
  const [rep, other] = (await newUsers(an, 'SALES', 'SALES')) as [TestCaller, TestCaller];
  const [taskId, laterTaskId] = [randomUUID(), randomUUID()];
  const created = bus.build('task.created', taskId, task(taskId, rep.id), { actorId: m1.id });
  await bus.send(created);
  await consumed(an, created);
  const [n] = (await notificationsOf(rep)).filter((x) => x.entityId === taskId);
  const later = bus.build('task.created', laterTaskId, task(laterTaskId, rep.id), { actorId: m1.id });
  await bus.send(later);
  await consumed(an, later);
  const [l] = (await notificationsOf(rep)).filter((x) => x.entityId === laterTaskId);
  const UNREAD = '{ unreadNotificationCount }';
  const ONE = 'query($id: ID!) { notification(id: $id) { id } }';
  expect((await rep.gql(UNREAD)).data).toEqual({ unreadNotificationCount: 2 });
  const DELETE = 'mutation($id: ID!) { deleteNotification(id: $id) }';
  expect(code(await other.gql(DELETE, { id: n!.id }))).toBe('NOT_FOUND');
  expect(await sql(an, 'SELECT id FROM notifications WHERE id = ? AND deleted_at IS NULL', [n!.id])).toHaveLength(1);
  expect((await rep.gql(DELETE, { id: n!.id })).data).toEqual({ deleteNotification: n!.id });
  // Gone for the user: no list, read, count or change shows it; deleting it again is NOT_FOUND.
  expect((await notificationsOf(rep)).map((x) => x.id)).toEqual([l!.id]);
  expect((await rep.gql(ONE, { id: n!.id })).data).toEqual({ notification: null });
  expect((await rep.gql(UNREAD)).data).toEqual({ unreadNotificationCount: 1 });
  expect(code(await rep.gql('mutation($id: ID!) { markNotificationRead(id: $id) { id } }', { id: n!.id }))).toBe('NOT_FOUND');
  expect(code(await rep.gql(DELETE, { id: n!.id }))).toBe('NOT_FOUND');
  // A client whose last received notification was the deleted one resumes after it (the feed's positions query).
  const POSITIONS = 'query($after: ID, $first: Int!) { liveNotificationPositions(after: $after, first: $first) { id } }';
  const resumed = await an.call(rep.identity, POSITIONS, { after: n!.id, first: 10 });
  expect(resumed.errors).toBeUndefined();
  expect(resumed.data.liveNotificationPositions).toEqual([{ id: l!.id }]);
  // ... and a deleted one is never replayed to a client resuming from before it.
  await sql(an, 'UPDATE notifications SET deleted_at = now() WHERE id = ?', [l!.id]);
  expect((await an.call(rep.identity, POSITIONS, { after: n!.id, first: 10 })).data.liveNotificationPositions).toEqual([]);
});

test('a stale customer.deleted (older than the restoration already applied) archives nothing', async () => {
  const [rep] = (await newUsers(an, 'SALES')) as [TestCaller];
  const customerId = randomUUID();
  const sagaId = randomUUID();
  const versioned = <E extends { aggregateVersion?: number | null }>(e: E, v: number): E => Object.assign(e, { aggregateVersion: v });
  const created = versioned(bus.build('customer.created', customerId, customer(customerId, rep.id), { actorId: m1.id }), 1);
  const deleted = versioned(
    bus.build('customer.deleted', customerId, { ...customer(customerId, rep.id), sagaId, requestedBy: m1.id }, { actorId: m1.id, correlationId: sagaId }),
    2,
  );
  const restored = versioned(bus.build('customer.restored', customerId, { ...customer(customerId, rep.id), sagaId }, { actorId: null, correlationId: sagaId }), 3);
  for (const e of [created, deleted, restored]) {
    await bus.send(e);
    await consumed(an, e);
  }
  expect((await notificationsOf(rep)).map((n) => n.entityId)).toContain(customerId);
  // the same deletion again under a new event id (a replay the inbox no longer remembers)
  const replay = versioned(
    bus.build('customer.deleted', customerId, { ...customer(customerId, rep.id), sagaId, requestedBy: m1.id }, { actorId: m1.id, correlationId: sagaId }),
    2,
  );
  await bus.send(replay);
  await consumed(an, replay);
  expect((await notificationsOf(rep)).map((n) => n.entityId)).toContain(customerId);
});
